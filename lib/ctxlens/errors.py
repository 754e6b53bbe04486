"""The errors a page turns into a clear message (never a traceback)."""


class CtxlensError(Exception):
    """Base class: the message is written for the person using the app."""


class InputError(CtxlensError, ValueError):
    """The typed text (or another user input) cannot be analysed as given."""


class ModelUnavailable(CtxlensError):
    """A model cannot be had: names the model and the cause."""

    def __init__(self, model: str, cause: str, hint: str = ""):
        self.model, self.cause, self.hint = model, cause, hint
        message = f"Model '{model}' is not available: {cause}."
        super().__init__(f"{message} {hint}".strip())


class CapabilityMissing(CtxlensError):
    """The model has no trained weights for what a view needs (e.g. no MLM head)."""


class ServerUnavailable(CtxlensError):
    """The classroom model server (CTXLENS_SERVER) does not answer, or answers that it is not ready."""

    def __init__(self, url: str, cause: str):
        self.url, self.cause = url, cause
        super().__init__(
            f"The model server at {url} is not answering ({cause}). The page works again as soon as it "
            "does: ask whoever runs it to start `ctxlens serve`, then rerun the page (R)."
        )
