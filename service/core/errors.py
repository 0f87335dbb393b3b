"""The one error the core raises for bad specs or data."""


class SpecError(ValueError):
    """A spec field or data array is invalid; `field` is its dotted path, e.g. `network.layers`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
