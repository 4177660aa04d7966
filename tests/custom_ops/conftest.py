"""Fixtures for the custom_ops tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from custom_ops_routes import Exported, export_routes_into


@pytest.fixture(scope="session")
def export_routes(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[tuple[bool, str], Exported]]:
    """``export_routes(name, model, args, **export_kwargs)`` -> {(dynamo, lowering): Exported}."""

    def export(name: str, model: Any, args: tuple[Any, ...], **kwargs: Any) -> dict[tuple[bool, str], Exported]:
        return export_routes_into(tmp_path_factory.mktemp(name), name, model, args, **kwargs)

    return export
