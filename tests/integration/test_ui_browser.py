"""The /ui dashboard in a real browser: the system's Chromium driven by Playwright, against a live
API, scheduler and worker (embedded back end). Nothing is downloaded at test time."""

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.admin import create_api_key
from app.lifecycle import TERMINAL, JobStatus
from tests.integration.test_training_e2e import tutorial, wait_until_done

CHROMIUM = Path(os.environ.get("EPOCHLY_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def require_chromium() -> None:
    """As tests/conftest.py's require_service: with CI=true a missing browser fails, elsewhere it skips."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright is not installed (pip install playwright)")
    if not missing:
        return
    message = "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: a missing browser is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser, service) -> Iterator:
    """A fresh tab that is already logged in (the key set in sessionStorage, as the log-in form does)."""
    context = browser.new_context(base_url=service.url, viewport={"width": 1280, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('epochly.api_key', {service.key!r})")
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def dataset_id(live) -> str:
    return live.post("/v1/datasets/examples/side-effects").json()["id"]


def mark_document(page) -> None:
    """A flag on the window that any reload would clear."""
    page.evaluate("window.__sameDocument = true")


def test_log_in_keeps_the_key_in_session_storage_only(browser, service):
    context = browser.new_context(base_url=service.url)
    page = context.new_page()
    page.goto("/ui")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("input[name=api_key]", "ek_not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:has-text('not valid')")

    page.fill("input[name=api_key]", service.key)
    page.click("button[type=submit]")
    page.wait_for_selector("table#jobs")
    assert page.evaluate("sessionStorage.getItem('epochly.api_key')") == service.key
    assert service.key not in page.url
    assert context.cookies() == []
    context.close()


def test_a_rejected_key_returns_to_log_in_and_an_unknown_job_is_not_found(browser, service, page):
    page.goto("/ui/jobs/job_does_not_exist")
    page.wait_for_selector("#not-found:has-text('Not found')")

    stale = browser.new_context(base_url=service.url)
    stale.add_init_script("sessionStorage.setItem('epochly.api_key', 'ek_revoked')")
    tab = stale.new_page()
    tab.goto("/ui")
    tab.wait_for_url(re.compile(r"/ui/login\?next="))
    tab.wait_for_selector("input[name=api_key]")
    stale.close()


def test_submit_the_tutorial_from_the_form_and_watch_its_curves_reach_20_epochs_without_a_reload(page, live, dataset_id):
    page.goto("/ui/new")
    page.wait_for_selector(f"#f-dataset_id option[value='{dataset_id}']", state="attached")
    page.select_option("#f-dataset_id", dataset_id)
    # A field error shows at the field it names, and nothing is submitted.
    page.fill("#f-fit", '{"epochs": 0, "batch_size": 10}')
    page.click("#submit")
    page.wait_for_selector("[data-field=fit].invalid [data-error-for=fit]:has-text('fit.epochs')")
    page.reload()
    page.wait_for_selector(f"#f-dataset_id option[value='{dataset_id}']", state="attached")
    page.select_option("#f-dataset_id", dataset_id)

    page.click("#submit")
    page.wait_for_url(re.compile(r"/ui/jobs/job_"), timeout=60_000)
    job_id = page.url.rsplit("/", 1)[1]
    mark_document(page)
    started = time.monotonic()
    page.wait_for_selector(".chart[data-metric=loss][data-epochs='20']", timeout=90_000)
    assert page.evaluate("window.__sameDocument") is True, "the job page reloaded instead of updating live"
    assert page.locator(".chart[data-metric=accuracy]").get_attribute("data-epochs") == "20"
    page.wait_for_selector("#log:has-text('Epoch 20/20')")
    page.wait_for_selector("#download:not([hidden])")
    assert live.get(f"/v1/jobs/{job_id}").json()["status"] == JobStatus.SUCCEEDED
    assert time.monotonic() - started < 90

    page.goto("/ui")
    row = page.locator(f"tr[data-job-id='{job_id}']")
    row.wait_for()
    assert row.get_attribute("data-status") == JobStatus.SUCCEEDED
    assert "20/20" in row.inner_text()


def test_the_jobs_page_follows_a_new_job_live(page, live, dataset_id):
    page.goto("/ui")
    page.wait_for_selector("#live.on")
    mark_document(page)
    job_id = live.post("/v1/jobs", json=tutorial(dataset_id, epochs=3)).json()["id"]
    page.wait_for_selector(f"tr[data-job-id='{job_id}'][data-status='{JobStatus.SUCCEEDED}']", timeout=60_000)
    assert "3/3" in page.locator(f"tr[data-job-id='{job_id}']").inner_text()
    assert page.evaluate("window.__sameDocument") is True


def test_compare_two_jobs_overlays_two_series_and_highlights_the_difference(page, live, dataset_id):
    slow = tutorial(dataset_id, epochs=5)
    fast = tutorial(dataset_id, epochs=5)
    fast["compile"]["optimizer"]["learning_rate"] = 0.001
    ids = [live.post("/v1/jobs", json=spec).json()["id"] for spec in (slow, fast)]
    for job_id in ids:
        assert wait_until_done(live, job_id)["status"] == JobStatus.SUCCEEDED

    page.goto(f"/ui/compare?jobs={','.join(ids)}")
    chart = page.locator(".chart[data-metric=loss]")
    page.wait_for_selector(".chart[data-metric=loss][data-epochs='5']")
    # uPlot's legend: the x series plus one per run.
    assert chart.locator(".u-legend .u-series").count() == 3
    assert page.locator("#runs tbody tr").count() == 2
    differing = page.locator("#specs tr.diff")
    assert differing.count() == 1
    assert "compile.optimizer.learning_rate" in differing.inner_text()


def test_cancel_a_running_job_from_its_page(page, live, dataset_id):
    job_id = live.post("/v1/jobs", json=tutorial(dataset_id, epochs=500)).json()["id"]
    page.goto(f"/ui/jobs/{job_id}")
    page.wait_for_selector(".chart[data-metric=loss]:not([data-epochs='0'])", timeout=60_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector(f"body[data-status='{JobStatus.CANCELLED}']", timeout=30_000)
    assert dialogs, "the page should ask with the browser's confirm()"
    job = live.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == JobStatus.CANCELLED and job["status"] in TERMINAL
    assert 0 < job["epochs_completed"] < 500


def test_a_dropped_job_stream_reconnects_with_last_event_id_and_misses_no_epoch(page, live, dataset_id):
    import json

    from tests.integration.sse import read_events

    job_id = live.post("/v1/jobs", json=tutorial(dataset_id, epochs=8)).json()["id"]
    # The first connection carries the server's own events up to epoch 2, then drops.
    sent, last_id = [], None
    with live.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        for event in read_events(response):
            if event.event in ("status", "epoch"):
                sent.append(f"id: {event.id}\nevent: {event.event}\ndata: {json.dumps(event.data)}\n\n")
                last_id = event.id
            if event.event == "epoch" and event.data["epoch"] == 2:
                break
    asked: list[str | None] = []

    def first_drops(route):
        asked.append(route.request.headers.get("last-event-id"))
        if len(asked) == 1:
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body="".join(sent))
        else:
            route.continue_()

    page.route(re.compile(rf"/v1/jobs/{job_id}/events"), first_drops)
    page.goto(f"/ui/jobs/{job_id}")
    page.wait_for_selector(".chart[data-metric=loss][data-epochs='8']", timeout=60_000)
    assert asked[:2] == [None, last_id]
    assert wait_until_done(live, job_id)["epochs_completed"] == 8


def test_a_job_waiting_in_a_queue_no_worker_consumes_says_so_on_its_page(page, live, dataset_id):
    job_id = live.post("/v1/jobs", json={**tutorial(dataset_id, epochs=2), "queue": "gpu"}).json()["id"]
    try:
        page.goto(f"/ui/jobs/{job_id}")
        page.wait_for_selector("#log:has-text('no worker is consuming queue `gpu`')", timeout=30_000)
        assert "gpu" in page.locator("dl, table").filter(has_text="Queue").first.inner_text()
    finally:
        live.post(f"/v1/jobs/{job_id}/cancel")


def test_docs_try_it_out_lists_jobs_with_the_key(page, service):
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 10
    page.click("button.authorize")
    page.locator(".modal-ux input").first.fill(service.key)
    page.locator(".modal-ux button.authorize").first.click()
    page.locator(".modal-ux button.close-modal").first.click()
    operation = page.locator(".opblock-get").filter(has=page.locator("[data-path='/v1/jobs']")).first
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"


def test_redoc_renders_every_operation_from_the_service_alone(page, service, live):
    # Redoc asks for a logo at cdn.redoc.ly; the page's policy must stop the browser from even trying.
    outside: list[str] = []
    page.route(lambda url: not url.startswith(service.url), lambda route: (outside.append(route.request.url), route.abort()))
    page.goto("/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached", timeout=30_000)
    rendered = page.locator("[data-section-id^='operation/']").count()
    operations = sum(
        method in {"get", "post", "put", "patch", "delete"}
        for item in live.get("/openapi.json").json()["paths"].values()
        for method in item
    )
    assert rendered == operations
    assert outside == []


def test_datasets_page_adds_the_example_and_takes_a_dropped_csv(page, live):
    page.goto("/ui/datasets")
    page.wait_for_selector("table#datasets")
    page.click("#add-example")
    page.wait_for_selector("tr[data-dataset-id] >> text=side-effects")

    csv = "age,dose,label\n" + "".join(f"{20 + i},{i % 5},{i % 2}\n" for i in range(40))
    dropped = page.evaluate_handle(
        "(csv) => { const dt = new DataTransfer(); dt.items.add(new File([csv], 'doses.csv', {type: 'text/csv'})); return dt; }",
        csv,
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    page.wait_for_selector("tr[data-dataset-id] >> text=doses.csv")
    stored = {d["name"]: d for d in live.get("/v1/datasets").json()["items"]}
    assert stored["doses.csv"]["n_samples"] == 40
    assert stored["doses.csv"]["x_shape"] == [2]

    # A file the service refuses says why beside the drop zone.
    broken = page.evaluate_handle(
        "() => { const dt = new DataTransfer(); dt.items.add(new File(['not,a\\n'], 'broken.csv', {type: 'text/csv'})); return dt; }"
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": broken})
    page.wait_for_selector("#upload-error:not(:empty)")
    assert "broken.csv" not in {d["name"] for d in live.get("/v1/datasets").json()["items"]}


def sweep_spec(dataset_id: str, *, epochs: int) -> dict:
    """The tutorial over two learning rates, as a grid: two trials, both queued at once."""
    return {
        **tutorial(dataset_id, epochs=epochs, validation_split=0.2),
        "name": "ui sweep",
        "search": {"compile.optimizer.learning_rate": {"type": "choice", "values": [0.001, 0.01]}},
        "sampler": "grid",
        "pruner": "none",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parallel": 2,
    }


def start_sweep(live, dataset_id: str, *, epochs: int) -> str:
    response = live.post("/v1/sweeps", json=sweep_spec(dataset_id, epochs=epochs))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_until_sweep_done(client, sweep_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["status"] in TERMINAL:
            return sweep
        time.sleep(0.2)
    raise TimeoutError(f"sweep {sweep_id} still {sweep['status']} after {timeout_s}s")


def test_a_finished_sweep_shows_its_leaderboard_curves_and_list_entry(page, live, dataset_id):
    sweep_id = start_sweep(live, dataset_id, epochs=3)
    assert wait_until_sweep_done(live, sweep_id)["status"] == JobStatus.SUCCEEDED

    page.goto(f"/ui/sweeps/{sweep_id}")
    page.wait_for_selector("#curves[data-series='2'][data-epochs='3']")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    objectives = {row.get_attribute("data-job-id"): row.get_attribute("data-objective") for row in rows.all()}
    assert all(objectives.values()), f"every finished trial should have an objective: {objectives}"
    best = page.locator("#leaderboard tbody tr.best")
    assert best.count() == 1
    best_job = best.get_attribute("data-job-id")
    assert float(objectives[best_job]) == max(float(v) for v in objectives.values())
    assert best.get_by_role("link").get_attribute("href") == f"/ui/jobs/{best_job}"
    # uPlot's legend: the epoch axis plus one per trial; the best trial's curve is the colored one.
    assert page.locator("#curves .u-legend .u-series").count() == 3
    assert page.locator("#curves").get_attribute("data-best-job-id") == best_job
    assert page.locator(".scatter[data-param='compile.optimizer.learning_rate'] circle.point").count() == 2
    assert page.locator("#cancel-sweep").is_hidden()

    page.goto("/ui/sweeps")
    listed = page.locator(f"#sweeps tr[data-sweep-id='{sweep_id}']")
    listed.wait_for()
    assert listed.get_attribute("data-status") == JobStatus.SUCCEEDED
    assert "2/2" in listed.inner_text()

    page.goto(f"/ui/jobs/{best_job}")
    link = page.locator(f"a.sweep-link[href='/ui/sweeps/{sweep_id}']")
    link.wait_for()
    assert re.search(rf"sweep {sweep_id} · trial [12]", link.inner_text())


def test_the_sweep_page_follows_a_running_sweep_live(page, live, dataset_id):
    sweep_id = start_sweep(live, dataset_id, epochs=8)
    page.goto(f"/ui/sweeps/{sweep_id}")
    page.wait_for_selector("#live.on")
    mark_document(page)
    # A trial seen part-way through, then the same trial finished: the page grew without a reload.
    partway = page.wait_for_function(
        """() => {
            const row = [...document.querySelectorAll('#leaderboard tbody tr[data-epochs]')]
                .find((tr) => +tr.dataset.epochs > 0 && +tr.dataset.epochs < 8);
            return row && row.dataset.jobId;
        }""",
        timeout=60_000,
    )
    job_id = partway.json_value()
    page.wait_for_selector(f"#leaderboard tr[data-job-id='{job_id}'][data-epochs='8']", timeout=60_000)
    page.wait_for_selector(f"body[data-status='{JobStatus.SUCCEEDED}']", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "the sweep page reloaded instead of updating live"
    assert page.locator("#curves").get_attribute("data-series") == "2"


def test_cancel_a_running_sweep_from_its_page(page, live, dataset_id):
    sweep_id = start_sweep(live, dataset_id, epochs=500)
    page.goto(f"/ui/sweeps/{sweep_id}")
    page.wait_for_selector("#leaderboard tbody tr[data-status='running']:not([data-epochs='0'])", timeout=60_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel sweep").click()
    page.wait_for_selector(f"body[data-status='{JobStatus.CANCELLED}']", timeout=30_000)
    assert dialogs, "the page should ask with the browser's confirm()"
    assert page.locator("#cancel-sweep").is_hidden()
    assert live.get(f"/v1/sweeps/{sweep_id}").json()["status"] == JobStatus.CANCELLED


def test_the_sweep_page_polls_when_its_stream_is_unavailable(page, live, dataset_id):
    page.route("**/v1/sweeps/*/events", lambda route: route.abort())
    sweep_id = start_sweep(live, dataset_id, epochs=3)
    page.goto(f"/ui/sweeps/{sweep_id}")
    page.wait_for_selector("#live:has-text('polling')")
    mark_document(page)
    page.wait_for_selector(f"body[data-status='{JobStatus.SUCCEEDED}']", timeout=60_000)
    page.wait_for_selector("#curves[data-series='2'][data-epochs='3']")
    assert page.locator("#leaderboard tbody tr[data-epochs='3']").count() == 2
    assert page.evaluate("window.__sameDocument") is True


# ---- page states, the remembered key, small values on charts ----------------------------------


def gpu_queued(live, dataset_id: str) -> str:
    """A job that stays queued: the service's one worker does not consume queue `gpu`."""
    return live.post("/v1/jobs", json={**tutorial(dataset_id, epochs=2), "queue": "gpu"}).json()["id"]


def diverging(live) -> dict:
    """A job that fails in its first epoch (NonFiniteLoss), before any epoch row."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, x=rng.normal(size=(64, 4)).astype(np.float32) * 1e3, y=rng.normal(size=(64,)).astype(np.float32) * 1e3)
    dataset = live.post("/v1/datasets", files={"file": ("big.npz", buffer.getvalue())}).json()
    return {
        "dataset_id": dataset["id"],
        "model": {"layers": [{"type": "Dense", "units": 8}, {"type": "Dense", "units": 1}]},
        "compile": {"optimizer": {"type": "SGD", "learning_rate": 1e6}, "loss": "mse"},
        "fit": {"epochs": 5, "batch_size": 8},
    }


NOTHING_PRINTED = re.compile(r"\b(null|undefined)\b")


def test_a_queued_job_page_has_its_loss_chart_at_0_epochs_from_the_start(page, live, dataset_id):
    job_id = gpu_queued(live, dataset_id)
    try:
        page.goto(f"/ui/jobs/{job_id}")
        page.wait_for_selector(f"body[data-status='{JobStatus.QUEUED}']")
        # The job can never run here, so the chart is there before any epoch, not because of one.
        page.wait_for_selector(".chart[data-metric=loss][data-epochs='0']", timeout=10_000)
    finally:
        live.post(f"/v1/jobs/{job_id}/cancel")
    page.wait_for_selector(f"body[data-status='{JobStatus.CANCELLED}']")
    assert page.locator(".chart[data-metric=loss]").get_attribute("data-epochs") == "0"

    failed = wait_until_done(live, live.post("/v1/jobs", json=diverging(live)).json()["id"])
    assert failed["status"] == JobStatus.FAILED and failed["epochs_completed"] == 0
    page.goto(f"/ui/jobs/{failed['id']}")
    page.wait_for_selector("#job-error:has-text('NonFiniteLoss')")
    page.wait_for_selector(".chart[data-metric=loss][data-epochs='0']", timeout=10_000)


def test_no_job_list_or_job_page_prints_null_in_any_state(browser, page, live, dataset_id, service, backend):
    succeeded = live.post("/v1/jobs", json={**tutorial(dataset_id, epochs=2), "name": "named run"}).json()["id"]
    failed = live.post("/v1/jobs", json=diverging(live)).json()["id"]
    for job_id in (succeeded, failed):
        wait_until_done(live, job_id)
    queued = gpu_queued(live, dataset_id)
    cancelled = gpu_queued(live, dataset_id)
    live.post(f"/v1/jobs/{cancelled}/cancel")
    running = live.post("/v1/jobs", json=tutorial(dataset_id, epochs=500)).json()["id"]
    try:
        states = {succeeded: JobStatus.SUCCEEDED, failed: JobStatus.FAILED, queued: JobStatus.QUEUED,
                  cancelled: JobStatus.CANCELLED, running: JobStatus.RUNNING}
        page.goto("/ui")
        for job_id, status in states.items():
            page.wait_for_selector(f"tr[data-job-id='{job_id}'][data-status='{status}']", timeout=60_000)
        for job_id in states:
            row = page.locator(f"tr[data-job-id='{job_id}']").inner_text()
            assert not NOTHING_PRINTED.search(row), f"{states[job_id]} job's row reads {row!r}"
        # The Details panel shows the spec as JSON, where null is a value; everything else is prose.
        for job_id, status in states.items():
            page.goto(f"/ui/jobs/{job_id}")
            page.wait_for_selector(f"body[data-status='{status}']")
            page.wait_for_selector("#log:not(:empty)")
            text = page.locator("main").evaluate(
                "(m) => { const c = m.cloneNode(true); c.querySelectorAll('dd.mono').forEach((d) => d.remove()); return c.innerText; }"
            )
            assert not NOTHING_PRINTED.search(text), f"the {status} job's page reads {NOTHING_PRINTED.search(text)[0]!r}"
    finally:
        live.post(f"/v1/jobs/{running}/cancel")
        live.post(f"/v1/jobs/{queued}/cancel")

    # An owner with no jobs at all sees the empty list and nothing else.
    empty = browser.new_context(base_url=service.url)
    empty.add_init_script(f"sessionStorage.setItem('epochly.api_key', {create_api_key(f'empty-{time.time_ns()}', backend)!r})")
    tab = empty.new_page()
    tab.goto("/ui")
    tab.wait_for_selector("text=No jobs yet")
    assert tab.locator("#jobs tbody tr").count() == 0
    assert not NOTHING_PRINTED.search(tab.locator("main").inner_text())
    empty.close()


def log_in(page, key: str, *, remember: bool) -> None:
    page.goto("/ui/login")
    page.fill("input[name=api_key]", key)
    if remember:
        page.check("input[name=remember]")
    page.click("button[type=submit]")
    page.wait_for_selector("table#jobs")


def stored(page) -> dict:
    return page.evaluate("({session: sessionStorage.getItem('epochly.api_key'), local: localStorage.getItem('epochly.api_key')})")


def test_remember_on_this_device_lets_a_new_tab_open_a_job_link_until_log_out(browser, service, live, dataset_id):
    job_id = gpu_queued(live, dataset_id)
    live.post(f"/v1/jobs/{job_id}/cancel")
    context = browser.new_context(base_url=service.url)
    first = context.new_page()
    first.goto("/ui/login")
    remember = first.locator("input[name=remember]")
    assert not remember.is_checked(), "remembering must be opted into"
    assert "until you log out" in first.locator("form.login").inner_text()

    # Off: the key is this tab's alone, and a job link opened in a new tab asks for it again.
    log_in(first, service.key, remember=False)
    assert stored(first) == {"session": service.key, "local": None}
    tab = context.new_page()
    tab.goto(f"/ui/jobs/{job_id}")
    tab.wait_for_url(re.compile(r"/ui/login\?next="))
    tab.close()

    # On: the key is in localStorage, and a new tab opens the link straight away.
    second = context.new_page()
    log_in(second, service.key, remember=True)
    assert stored(second) == {"session": None, "local": service.key}
    tab = context.new_page()
    tab.goto(f"/ui/jobs/{job_id}")
    tab.wait_for_selector(f"body[data-status='{JobStatus.CANCELLED}']")
    assert tab.url.endswith(f"/ui/jobs/{job_id}")

    # Log out, from the first tab, whose own key is in sessionStorage: both keys go.
    first.click("#logout")
    first.wait_for_url(re.compile(r"/ui/login"))
    assert stored(first) == {"session": None, "local": None}
    fresh = context.new_page()
    fresh.goto(f"/ui/jobs/{job_id}")
    fresh.wait_for_url(re.compile(r"/ui/login\?next="))
    assert context.cookies() == []
    context.close()


# Keeps every uPlot the page makes, to read the tick labels it draws on its canvas.
CAPTURE_PLOTS = """
window.__plots = [];
Object.defineProperty(window, 'uPlot', { configurable: true, get() { return undefined; }, set(real) {
  const kept = function (...args) { const plot = new real(...args); window.__plots.push(plot); return plot; };
  Object.assign(kept, real);
  Object.defineProperty(window, 'uPlot', { value: kept, writable: true, configurable: true });
} });
"""


def chart_labels(page, metric: str) -> dict:
    """The y axis' tick labels of the chart for `metric`, and its legend's value at the first epoch."""
    return page.evaluate(
        """(metric) => {
            const plot = window.__plots.filter((u) => u.root.isConnected && u.root.closest(`.chart[data-metric='${metric}']`)).pop();
            plot.setCursor({ left: plot.valToPos(1, 'x'), top: 10 });
            return { ticks: plot.axes[1]._values, splits: plot.axes[1]._splits,
                     legend: plot.root.querySelector('.u-legend .u-series:nth-child(2) .u-value').textContent };
        }""",
        metric,
    )


def test_the_learning_rate_chart_labels_small_values_readably(page, live, dataset_id):
    constant = tutorial(dataset_id, epochs=4)  # Adam at 1e-4, the tutorial's rate
    decaying = tutorial(dataset_id, epochs=4)
    decaying["compile"]["optimizer"]["learning_rate"] = {
        "type": "ExponentialDecay", "initial_learning_rate": 1e-4, "decay_steps": 100, "decay_rate": 0.5,
    }
    page.context.add_init_script(CAPTURE_PLOTS)
    for spec in (constant, decaying):
        job = wait_until_done(live, live.post("/v1/jobs", json=spec).json()["id"])
        assert job["status"] == JobStatus.SUCCEEDED
        rates = [e["logs"]["learning_rate"] for e in live.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]]
        page.goto(f"/ui/jobs/{job['id']}")
        page.wait_for_selector(".chart[data-metric=learning_rate][data-epochs='4']")
        shown = chart_labels(page, "learning_rate")
        ticks, splits = shown["ticks"], shown["splits"]
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), f"ticks must differ: {ticks}"
        for label, value in zip(ticks, splits, strict=True):
            assert float(label) == pytest.approx(value, rel=1e-6, abs=1e-12), f"{label!r} is not {value}"
        assert float(shown["legend"]) == pytest.approx(rates[0], rel=1e-3), f"the legend reads {shown['legend']!r}"


def test_rerun_a_finished_job_from_its_page_and_read_that_it_repeated_the_original(page, live, dataset_id):
    original = wait_until_done(live, live.post("/v1/jobs", json=tutorial(dataset_id, epochs=3, seed=None)).json()["id"])
    assert original["status"] == JobStatus.SUCCEEDED
    page.goto(f"/ui/jobs/{original['id']}")
    page.wait_for_selector(f"body[data-status='{JobStatus.SUCCEEDED}']")
    assert page.locator("#rerun-of").inner_text() == ""  # not a rerun itself
    page.get_by_role("button", name="Rerun").click()
    page.wait_for_url(re.compile(r"/ui/jobs/job_(?!" + original["id"][4:] + ")"))
    rerun_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector(f"body[data-status='{JobStatus.SUCCEEDED}']", timeout=60_000)
    page.wait_for_selector("#same-as-original[data-same='yes']", timeout=30_000)
    line = page.locator("#rerun-of").inner_text()
    assert f"Rerun of {original['id']}" in line and "same as the original: yes" in line
    rerun = live.get(f"/v1/jobs/{rerun_id}").json()
    assert (rerun["rerun_of"], rerun["versions_differ"], rerun["same_as_original"]) == (original["id"], [], True)


def test_a_job_that_has_not_finished_has_no_rerun_button(page, live, dataset_id):
    queued = gpu_queued(live, dataset_id)
    try:
        page.goto(f"/ui/jobs/{queued}")
        page.wait_for_selector(f"body[data-status='{JobStatus.QUEUED}']")
        assert page.locator("#rerun").is_hidden()
    finally:
        live.post(f"/v1/jobs/{queued}/cancel")
