import pytest


@pytest.fixture
def service_name() -> str:
    return "cardstorage"
