"""The one thing pyproject.toml cannot say: the top-level migrations/ folder, where `alembic upgrade
head` finds it in a checkout, ships inside the installed package as `app.migrations`, so a
non-editable install (the Docker image, `pip install .` anywhere) can migrate on its own."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["app*", "worker*"]), "app.migrations", "app.migrations.versions"],
    package_dir={"app.migrations": "migrations"},
)
