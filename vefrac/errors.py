"""The one exception type for bad input; the CLI turns it into exit code 2."""


class InputError(Exception):
    """Bad input (scenario, override, image, path): the message names the key or file."""
