"""Python labeling functions that `bench/abuse.py` registers in the server it attacks
(WS_PYTHON_LF_MODULES): what a careless or hostile deployment of registered code could do."""

from weak_supervision.registry import labeling_function


@labeling_function("abuse_loops_forever")
def loops_forever(text: str) -> str | None:
    while True:
        pass


@labeling_function("abuse_raises")
def raises(text: str) -> str | None:
    raise RuntimeError("secret internal state /srv/app/settings.py")
