"""Errors that cross module boundaries, kept apart so that no module has to import another just for its error."""


class ConfigError(Exception):
    """A configuration problem, reported to the operator as one line naming the key.

    The message is what the operator sees (`config.yaml: jobs[2]: must be a positive integer, got -4`), so it
    must never carry a secret: name the key and the problem, not the value, when the value could be a credential.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
