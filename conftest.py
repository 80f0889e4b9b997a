"""Start (or reuse) the embedded PostgreSQL and Redis before any test touches them."""

from cvsa_ml import embedded_services


def pytest_sessionstart(session):
    embedded_services.start_all()
