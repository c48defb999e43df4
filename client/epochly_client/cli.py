"""`epochly`: upload data, submit jobs and follow them from a terminal or a script."""

import json
import re
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from epochly_client.client import DEFAULT_URL, Client, EpochlyError
from epochly_client.models import Job, JobStatus, Sweep, Trial, ranked
from epochly_client.tutorial import TUTORIAL_JOB

EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_USAGE = 64

app = typer.Typer(help="Train Keras models on an Epochly service.", no_args_is_help=True, add_completion=False)
datasets_app = typer.Typer(help="Upload and list datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
keys_app = typer.Typer(
    help="API keys: your own over HTTP, or any owner's with --owner on the server (straight to its database).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
sweep_app = typer.Typer(help="Hyperparameter sweeps: many trials of one job spec, each an ordinary job.", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer, for scripts")]
QueueOpt = Annotated[str | None, typer.Option(help="The queue to wait in, e.g. gpu (overrides the spec's queue)")]


@app.callback()
def connect(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="EPOCHLY_URL", help="Service URL")] = DEFAULT_URL,
    api_key: Annotated[str | None, typer.Option(envvar="EPOCHLY_API_KEY", help="API key (Bearer)")] = None,
) -> None:
    ctx.obj = Client(url, api_key=api_key)
    # `keys list` and `keys revoke` go over HTTP when a URL was given, else to the server's database.
    source = ctx.get_parameter_source("url")
    ctx.meta["url_given"] = getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")
    ctx.call_on_close(ctx.obj.close)


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data))


def _job_table(jobs: list[Job], *, trials: bool = False) -> Table:
    """With `trials`, a sweep's trial number and parameters instead of the name (which only repeats the trial)."""
    table = Table("id", "status", "epochs", "loss", *(("trial", "params") if trials else ("name",)))
    for job in jobs:
        loss = f"{job.latest['loss']:.4f}" if job.latest and "loss" in job.latest else ""
        row = [job.id, job.status, f"{job.epochs_completed}/{job.epochs_total}", loss]
        if trials:
            row += [str(job.trial or ""), _params_text(job.params or {}, short=True)]
        else:
            row.append(job.raw.get("name") or "")
        table.add_row(*row)
    return table


@datasets_app.command("upload")
def datasets_upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a header row, or .npz with x and y")],
    target: Annotated[str | None, typer.Option(help="CSV label column (default: the last)")] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the file name)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload a CSV or .npz dataset."""
    dataset = ctx.obj.upload_dataset(file, target=target, name=name)
    if as_json:
        _print_json(dataset.raw)
    else:
        out.print(f"{dataset.id}  {dataset.n_samples} samples, features {dataset.x_shape}, labels {dataset.y_shape}")


@datasets_app.command("list")
def datasets_list(ctx: typer.Context, limit: int = 50, as_json: JsonOpt = False) -> None:
    """List datasets, newest first."""
    datasets, _ = ctx.obj.datasets(limit=limit)
    if as_json:
        _print_json([d.raw for d in datasets])
        return
    table = Table("id", "name", "format", "samples", "x_shape")
    for d in datasets:
        table.add_row(d.id, d.name, d.format, str(d.n_samples), str(d.x_shape))
    out.print(table)


DURATION = re.compile(r"^([0-9]+)([dhms])$")
DURATION_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration_s(text: str | None) -> int | None:
    if text is None:
        return None
    match = DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r}: give a duration such as 30d, 12h or 90s")
    return int(match.group(1)) * DURATION_S[match.group(2)]


def _server_admin() -> Any:
    try:
        from app import admin
    except ImportError:
        err.print("error: --owner works on the server's database; run it where the Epochly server is installed")
        raise typer.Exit(EXIT_FAILED) from None
    return admin


OwnerOpt = Annotated[
    str | None, typer.Option(help="Server-side: this owner's keys, straight in the server's database (DATABASE_URL)")
]


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    owner: OwnerOpt = None,
    name: Annotated[str, typer.Option(help="A label, to tell keys apart")] = "key",
    scope: Annotated[str | None, typer.Option(help="read (GET routes and streams) or write (everything)")] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="e.g. 30d, 12h or 90s; default: never")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once: yours over HTTP, or with --owner in the server's database."""
    if scope not in (None, "read", "write"):
        raise typer.BadParameter("--scope is read or write")
    expires_in_s = _duration_s(expires_in)
    if owner is not None:
        print(_server_admin().create_api_key(owner, name=name, scope=scope or "write", expires_in_s=expires_in_s))
        return
    created = ctx.obj.create_key(name=name, scope=scope, expires_in_s=expires_in_s)
    if as_json:
        _print_json(created)
    else:
        print(created["key"])


@keys_app.command("list")
def keys_list(ctx: typer.Context, owner: OwnerOpt = None, as_json: JsonOpt = False) -> None:
    """List keys (never the keys themselves): yours over HTTP when EPOCHLY_URL (or --url) is set, else
    every owner's (or with --owner one owner's) from the server's database."""
    if owner is not None or not ctx.meta.get("url_given"):
        keys = _server_admin().list_api_keys(owner)
    else:
        keys, cursor = ctx.obj.keys(limit=200)
        while cursor:
            more, cursor = ctx.obj.keys(limit=200, cursor=cursor)
            keys += more
    if as_json:
        _print_json(keys)
        return
    table = Table("id", "owner", "name", "prefix", "scope", "created", "expires", "last used", "revoked")
    for k in keys:
        table.add_row(
            k["id"],
            k.get("owner", ""),  # the server's database names owners; over HTTP every key is yours
            k["name"],
            k["prefix"],
            k["scope"],
            k["created_at"],
            k["expires_at"] or "",
            k["last_used_at"] or "",
            k["revoked_at"] or "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key at once: over HTTP when EPOCHLY_URL (or --url) is set, else in the server's database."""
    if ctx.meta.get("url_given"):
        ctx.obj.revoke_key(key_id)
    else:
        admin = _server_admin()
        from app.errors import KeyNotFound

        try:
            admin.revoke_api_key(key_id)
        except KeyNotFound as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(EXIT_FAILED) from None
    out.print(f"{key_id} revoked")


@app.command()
def audit(
    ctx: typer.Context,
    after: Annotated[int, typer.Option(help="Only records after this id")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many records")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Show your audit log, oldest first: every state-changing call."""
    records: list[dict[str, Any]] = []
    cursor: int | str | None = after
    while cursor is not None and len(records) < limit:
        page, cursor = ctx.obj.audit(after=cursor, limit=min(200, limit - len(records)))
        records += page
    if as_json:
        _print_json(records)
        return
    table = Table("id", "at", "action", "target", "key", "client", "outcome")
    for r in records:
        table.add_row(
            str(r["id"]), r["at"], r["action"], r["target_id"] or "", r["key_id"] or "", r["client"] or "", r["outcome"]
        )
    out.print(table)


@app.command()
def submit(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Job spec JSON (as POST /v1/jobs takes)")],
    dataset: Annotated[str | None, typer.Option(help="Dataset id (overrides the spec's dataset_id)")] = None,
    queue: QueueOpt = None,
    follow: Annotated[bool, typer.Option("--follow", help="Follow the job until it ends")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job spec (JSON file); --follow watches it until it ends."""
    job = ctx.obj.submit(_read_json(spec), dataset_id=dataset, queue=queue)
    if follow:
        raise typer.Exit(_follow(ctx.obj, job.id, as_json))
    if as_json:
        _print_json(job.raw)
    else:
        out.print(f"{job.id} {job.status}")


@app.command("jobs")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled")] = None,
    sweep: Annotated[str | None, typer.Option(help="Only this sweep's trials")] = None,
    queue: Annotated[str | None, typer.Option(help="Only the jobs of this queue")] = None,
    limit: int = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    jobs, _ = ctx.obj.jobs(status=status, sweep_id=sweep, queue=queue, limit=limit)
    if as_json:
        _print_json([j.raw for j in jobs])
    else:
        out.print(_job_table(jobs, trials=sweep is not None))


@app.command()
def show(ctx: typer.Context, job_id: str, as_json: JsonOpt = False) -> None:
    """Show one job: status, progress, history, error."""
    job = ctx.obj.get(job_id)
    if as_json:
        _print_json(job.raw)
        return
    out.print(_job_table([job]))
    devices = ", ".join(d["name"] for d in job.worker_devices or [])
    out.print(f"queue: {job.queue}" + (f"; on {job.raw['worker']} ({devices})" if devices else ""), highlight=False)
    if job.waiting_reason:
        out.print(f"[yellow]waiting: {job.waiting_reason}[/yellow]")
    for entry in job.raw.get("history", []):
        out.print(f"  {entry['at']}  {entry['status']:<10} {entry['message']}")
    if job.stop_reason:
        best = f", best epoch {job.best_epoch}" if job.best_epoch else ""
        out.print(f"stop reason: {job.stop_reason}{best}", highlight=False)
    if job.error:
        out.print(f"[red]{job.error['type']}: {job.error['message']}[/red]")


@app.command()
def follow(ctx: typer.Context, job_id: str, as_json: JsonOpt = False) -> None:
    """Follow a job live: a progress bar within each epoch, one Keras-style line per epoch."""
    raise typer.Exit(_follow(ctx.obj, job_id, as_json))


@app.command()
def cancel(ctx: typer.Context, job_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a job: a queued one never starts, a running one stops at the next step boundary."""
    job = ctx.obj.cancel(job_id)
    if as_json:
        _print_json(job.raw)
    else:
        out.print(
            f"{job.id} {job.status if job.status == JobStatus.CANCELLED else 'cancelling (stops at the next step boundary)'}"
        )


@app.command()
def log(ctx: typer.Context, job_id: str) -> None:
    """Print the job's log in Keras' verbose=2 style."""
    sys.stdout.write(ctx.obj.log(job_id))


@app.command()
def example(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Upload the tutorial's data, submit the tutorial's model and follow it."""
    dataset = ctx.obj.example_dataset()
    job = ctx.obj.submit(TUTORIAL_JOB, dataset_id=dataset.id)
    if not as_json:
        out.print(f"dataset {dataset.id} ({dataset.n_samples} samples), job {job.id}")
    raise typer.Exit(_follow(ctx.obj, job.id, as_json))


@app.command()
def evaluate(
    ctx: typer.Context,
    job_id: str,
    dataset: Annotated[str, typer.Option(help="Dataset id to evaluate on")],
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a trained model on a dataset: Keras' model.evaluate numbers."""
    result = ctx.obj.evaluate(job_id, dataset)
    if as_json:
        _print_json(result)
        return
    values = " - ".join(f"{k}: {v:.4f}" for k, v in result.items() if k != "samples")
    out.print(f"{values} - samples: {result['samples']}", highlight=False)


@app.command()
def predict(
    ctx: typer.Context,
    job_id: str,
    inputs: Annotated[
        str | None,
        typer.Option(help="JSON rows of raw features, e.g. '[[20], [90]]', or @rows.json; printed as JSON"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help=".npz, .npy or CSV of inputs (big batches)")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Predict on this dataset's features")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="With --file or --dataset: where to write the predictions")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="npy or csv (default: npy, or csv for a CSV file)")] = None,
) -> None:
    """Predict with a trained model: JSON rows in and out, or a file / dataset in and a .npy or CSV file out."""
    if sum(x is not None for x in (inputs, file, dataset)) != 1:
        err.print("error: give exactly one of --inputs, --file or --dataset")
        raise typer.Exit(EXIT_USAGE)
    if inputs is not None:
        text = Path(inputs[1:]).read_text() if inputs.startswith("@") else inputs
        try:
            rows = json.loads(text)
        except ValueError as exc:
            err.print(f"error: --inputs is not JSON: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        print(json.dumps(ctx.obj.predict(job_id, rows)))
        return
    suffix = fmt or ("csv" if file is not None and file.suffix.lower() == ".csv" else "npy")
    target = output or Path(f"{job_id}-predictions.{suffix}")
    if file is not None:
        written = ctx.obj.predict_file(job_id, file, target, format=fmt)
    else:
        assert dataset is not None
        written = ctx.obj.predict_dataset(job_id, dataset, target, format=suffix)
    err.print(f"predictions written to {written}", highlight=False)


def _follow(client: Client, job_id: str, as_json: bool) -> int:
    total = client.get(job_id).epochs_total
    final_status = "unknown"
    with Progress(
        TextColumn("Epoch {task.fields[epoch]}/" + str(total)),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=as_json or not out.is_terminal,
    ) as bar:
        task = bar.add_task("epoch", total=None, epoch=1)
        for event in client.stream(job_id):
            if as_json:
                print(json.dumps({"event": event.type, "id": event.id, "data": event.data}), flush=True)
            if event.type == "progress":
                bar.update(task, completed=event.data["batch"], total=event.data["batches"], epoch=event.data["epoch"])
            elif (epoch := event.epoch) is not None:
                if not as_json:
                    bar.console.print(epoch.keras_line(total), highlight=False)
                bar.update(task, completed=0, epoch=epoch.epoch + 1)
            elif event.type == "status" and not as_json and event.data["status"] in (JobStatus.FAILED, JobStatus.CANCELLED):
                bar.console.print(f"{event.data['status']}: {event.data['message']}", highlight=False)
            elif event.type == "end":
                final_status = event.data["status"]
                if not as_json and final_status == JobStatus.SUCCEEDED and (line := client.get(job_id).stop_line()):
                    bar.console.print(line, highlight=False)
    exit_codes: dict[str, int] = {JobStatus.SUCCEEDED: 0, JobStatus.CANCELLED: EXIT_CANCELLED}
    return exit_codes.get(final_status, EXIT_FAILED)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        err.print(f"error: {path} is not valid JSON: {exc}")
        raise typer.Exit(EXIT_USAGE) from None


def _short_names(paths: list[str]) -> dict[str, str]:
    """Each path's shortest dotted tail that no other path ends with, for narrow tables:
    compile.optimizer.learning_rate → learning_rate; model.layers[0].units → units, or layers[0].units
    when model.layers[1].units is searched too."""
    names = {}
    for path in paths:
        parts = path.split(".")
        for size in range(1, len(parts) + 1):
            tail = ".".join(parts[-size:])
            if not any(other != path and (other == tail or other.endswith("." + tail)) for other in paths):
                break
        names[path] = tail
    return names


def _params_text(params: dict[str, Any], *, short: bool = False) -> str:
    names = _short_names(list(params)) if short else {path: path for path in params}
    return ", ".join(f"{names[path]}={value}" for path, value in params.items())


def _objective_text(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _trial_line(sweep: Sweep, trial: Trial) -> str:
    return f"trial {trial.trial} - {sweep.metric}: {_objective_text(trial.objective) or 'n/a'} - {_params_text(trial.params)}"


def _leaderboard_table(sweep: Sweep, trials: list[Trial]) -> Table:
    """Best first (`trials` ranked), the best trial highlighted, a column per searched path."""
    finished = sum(trial.done for trial in trials)
    title = f"{sweep.id}: {finished}/{sweep.trials} trials ended, {sweep.direction} {sweep.metric}"
    names = _short_names(list(sweep.search))
    # Headers kept whole even in narrow output: they are what tells the columns apart.
    params = [Column(name, min_width=len(name)) for name in names.values()]
    objective = Column(sweep.metric, min_width=len(sweep.metric))
    table = Table("trial", "status", *params, objective, "epochs", "stop reason", title=title)
    for rank, trial in enumerate(trials):
        style = "bold green" if rank == 0 and trial.objective is not None else None
        values = [str(trial.params.get(path, "")) for path in names]
        epochs = f"{trial.epochs_completed}/{sweep.epochs_per_trial or '?'}"
        row = (str(trial.trial), trial.status, *values, _objective_text(trial.objective), epochs, trial.stop_reason or "")
        table.add_row(*row, style=style)
    return table


@app.command("sweeps")
def list_sweeps(ctx: typer.Context, limit: int = 50, as_json: JsonOpt = False) -> None:
    """List sweeps, newest first."""
    sweeps, _ = ctx.obj.sweeps(limit=limit)
    if as_json:
        _print_json([s.raw for s in sweeps])
        return
    table = Table(Column("id", no_wrap=True), "name", "status", "trials", "best")
    for s in sweeps:
        best = _objective_text(s.best.objective) if s.best else ""
        table.add_row(s.id, s.name or "", s.status, f"{s.trials_finished}/{s.trials}", best)
    out.print(table)


@sweep_app.command("create")
def sweep_create(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Sweep JSON (as POST /v1/sweeps takes)")],
    dataset: Annotated[str | None, typer.Option(help="Dataset id (overrides the file's dataset_id)")] = None,
    queue: QueueOpt = None,
    follow: Annotated[bool, typer.Option("--follow", help="Show a live leaderboard until the sweep ends")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a sweep (JSON file); --follow shows its leaderboard live until every trial has ended."""
    sweep = ctx.obj.create_sweep(_read_json(spec), dataset_id=dataset, queue=queue)
    if follow:
        if not as_json:
            out.print(f"sweep {sweep.id}: {sweep.trials} trials, {sweep.raw['parallel']} at a time", highlight=False)
        raise typer.Exit(_follow_sweep(ctx.obj, sweep, as_json))
    if as_json:
        _print_json(sweep.raw)
    else:
        out.print(f"{sweep.id} {sweep.status}", highlight=False)


@sweep_app.command("follow")
def sweep_follow(ctx: typer.Context, sweep_id: str, as_json: JsonOpt = False) -> None:
    """Show a sweep's leaderboard live until every trial has ended."""
    raise typer.Exit(_follow_sweep(ctx.obj, ctx.obj.sweep(sweep_id), as_json))


@sweep_app.command("show")
def sweep_show(ctx: typer.Context, sweep_id: str, as_json: JsonOpt = False) -> None:
    """Show one sweep: its leaderboard, best first, and how much each searched parameter matters."""
    sweep = ctx.obj.sweep(sweep_id)
    importance = ctx.obj.sweep_importance(sweep_id)
    if as_json:
        _print_json({**sweep.raw, "importance": importance.raw})
        return
    out.print(f"{sweep.id} {sweep.name or ''} {sweep.status}", highlight=False)
    out.print(_leaderboard_table(sweep, sweep.leaderboard))
    if sweep.best:
        out.print(f"best: {_trial_line(sweep, sweep.best)}", highlight=False)
    if not importance.importances:
        out.print("importance: needs at least 2 finished trials that drew different values", highlight=False)
        return
    table = Table("param", "importance", title=f"importance ({importance.method}, {importance.trials_used} trials)")
    for path, share in importance.importances.items():
        table.add_row(path, f"{share:.3f}")
    out.print(table)


@sweep_app.command("cancel")
def sweep_cancel(ctx: typer.Context, sweep_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a sweep: no new trials, queued ones never start, running ones stop at their next batch."""
    sweep = ctx.obj.cancel_sweep(sweep_id)
    if as_json:
        _print_json(sweep.raw)
    else:
        state = sweep.status if sweep.done else "cancelling (running trials stop at their next batch)"
        out.print(f"{sweep.id} {state}", highlight=False)


TRIAL_EVENTS = frozenset({"trial_queued", "trial_started", "pruned", "finished", "best"})


def _sweep_event_line(sweep: Sweep, event_type: str, trial: Trial, epoch_lines: bool) -> str | None:
    objective = f"{sweep.metric}: {_objective_text(trial.objective) or 'n/a'}"
    if event_type == "trial_started":
        return f"trial {trial.trial} started: {_params_text(trial.params)}"
    if event_type == "epoch" and epoch_lines:
        return f"trial {trial.trial} epoch {trial.epochs_completed}/{sweep.epochs_per_trial or '?'} - best {objective}"
    if event_type == "pruned":
        return f"trial {trial.trial} pruned after epoch {trial.epochs_completed} - {objective}"
    if event_type == "finished":
        how = f" ({trial.stop_reason})" if trial.stop_reason else ""
        return f"trial {trial.trial} {trial.status}{how} after {trial.epochs_completed} epochs - {objective}"
    if event_type == "best":
        return f"new best: {_trial_line(sweep, trial)}"
    return None


def _follow_sweep(client: Client, sweep: Sweep, as_json: bool) -> int:
    """A live leaderboard on a terminal; elsewhere a line per trial event (or, with --json, per event) and the final one."""
    live = out.is_terminal and not as_json
    trials = {t.job_id: t for t in sweep.leaderboard}
    final_status = "unknown"

    def leaderboard() -> Table:
        return _leaderboard_table(sweep, ranked(list(trials.values()), sweep.direction))

    with Live(get_renderable=leaderboard, console=out, transient=True) if live else nullcontext():
        for event in client.sweep_events(sweep.id):
            if as_json:
                print(json.dumps({"event": event.type, "id": event.id, "data": event.data}), flush=True)
            if event.type == "sweep":
                # The whole sweep: first, and again after a reconnect (the stream does not replay).
                sweep = Sweep.from_json(event.data)
                trials = {t.job_id: t for t in sweep.leaderboard}
            elif event.type == "end":
                final_status = event.data["status"]
            elif (trial := _updated_trial(sweep, trials, event.type, event.data)) is not None:
                trials[trial.job_id] = trial
                if not as_json and (line := _sweep_event_line(sweep, event.type, trial, epoch_lines=not live)):
                    out.print(line, highlight=False)
    if not as_json:
        final = client.sweep(sweep.id)
        out.print(_leaderboard_table(final, final.leaderboard))
        if final.best:
            out.print(f"best: {_trial_line(final, final.best)}", highlight=False)
        out.print(f"sweep {final.id} {final_status}", highlight=False)
    exit_codes: dict[str, int] = {JobStatus.SUCCEEDED: 0, JobStatus.CANCELLED: EXIT_CANCELLED}
    return exit_codes.get(final_status, EXIT_FAILED)


def _updated_trial(sweep: Sweep, trials: dict[str, Trial], event_type: str, data: dict[str, Any]) -> Trial | None:
    """The trial an event is about, as it stands after it; None for events about no known trial."""
    if event_type in TRIAL_EVENTS:
        return Trial.from_json(data)
    if event_type == "epoch" and (trial := trials.get(data["job_id"])) is not None:
        return trial.after_epoch(data["epoch"], data.get("objective"), sweep.direction)
    return None


def main() -> None:
    try:
        app()
    except EpochlyError as exc:
        err.print(f"error: {exc.detail}", highlight=False)
        for field_error in exc.errors:
            err.print(f"  {field_error['path']}: {field_error['message']}", highlight=False)
        sys.exit(EXIT_FAILED)
    except httpx.TransportError as exc:
        err.print(f"error: cannot reach the Epochly service ({exc}); is it running? Set EPOCHLY_URL or --url", highlight=False)
        sys.exit(EXIT_FAILED)
