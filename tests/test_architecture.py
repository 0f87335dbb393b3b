"""The layering rules of ARCHITECTURE.md, checked on the source: imports point one way and
SQL is written in `service/db` only."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "service"

# What each layer may import from the service itself (besides its own modules).
ALLOWED_SERVICE_IMPORTS = {
    "core": set(),
    "tabular": {"core"},
    "formats": {"core"},
    "db": {"core", "errors"},
    "jobs": {"core", "db", "config", "errors", "logs"},
    "api": {"core", "db", "config", "errors", "logs", "tabular", "formats"},
}
# Third-party packages the core may use: NumPy, and numba in the compiled engine's
# kernels only (compiled.py loads them lazily, so the core still works without numba).
CORE_THIRD_PARTY = {"numpy"}
KERNELS_THIRD_PARTY = {"numpy", "numba"}
# The tabular reader adds Arrow's CSV parser, and only that.
TABULAR_THIRD_PARTY = {"numpy", "pyarrow"}
# Model files add onnx (and its protobuf), in the ONNX module only.
FORMATS_THIRD_PARTY = {"numpy"}
ONNX_MODULE_THIRD_PARTY = {"numpy", "onnx"}
# SQLAlchemy names that build statements; outside `service/db` they mean SQL written in
# the wrong room.
STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text", "literal", "func"}


def _modules(layer: str) -> list[Path]:
    module = PACKAGE / f"{layer}.py"  # a layer of one module, such as tabular.py
    return [module] if module.is_file() else sorted((PACKAGE / layer).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import in `path`, relative ones made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names]))
    return found


def _service_layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "service" and len(parts) > 1 else None


@pytest.mark.parametrize("layer", sorted(ALLOWED_SERVICE_IMPORTS))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    allowed = ALLOWED_SERVICE_IMPORTS[layer] | {layer}
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for path in _modules(layer)
        for module, _ in _imports(path)
        if (target := _service_layer(module)) is not None and target not in allowed
    ]
    assert not wrong, f"service/{layer} may import only {sorted(allowed)}"


def test_the_core_uses_only_numpy_and_the_standard_library_and_numba_in_its_kernels() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for path in _modules("core")
        for module, _ in _imports(path)
        if (top := module.split(".")[0]) != "service"
        and top not in sys.stdlib_module_names
        and top not in (KERNELS_THIRD_PARTY if path.name == "kernels.py" else CORE_THIRD_PARTY)
    ]
    assert not wrong


def test_the_tabular_reader_uses_only_numpy_and_pyarrow() -> None:
    wrong = [
        module
        for module, _ in _imports(PACKAGE / "tabular.py")
        if (top := module.split(".")[0]) != "service"
        and top not in sys.stdlib_module_names
        and top not in TABULAR_THIRD_PARTY
    ]
    assert not wrong


def test_model_files_use_numpy_and_onnx_only_in_the_onnx_module() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for path in _modules("formats")
        for module, _ in _imports(path)
        if (top := module.split(".")[0]) != "service"
        and top not in sys.stdlib_module_names
        and top not in (ONNX_MODULE_THIRD_PARTY if path.name == "onnx.py" else FORMATS_THIRD_PARTY)
    ]
    assert not wrong


@pytest.mark.parametrize("layer", ["api", "jobs"])
def test_sql_is_written_in_the_db_package_only(layer: str) -> None:
    wrong = []
    for path in _modules(layer):
        source = path.read_text()
        for module, names in _imports(path):
            if module.startswith("sqlalchemy") and (
                "dialects" in module or STATEMENT_BUILDERS & set(names)
            ):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}: from {module} import {names}")
        if "exec_driver_sql" in source:
            wrong.append(f"{path.relative_to(PACKAGE.parent)}: exec_driver_sql")
    assert not wrong, "statements belong in service/db; call a query function from there"
