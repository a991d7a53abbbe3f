"""Run journal-reading snippets under one interpreter; print the results as a pickle.

Used by tests/test_journal_dropin.py to run the *same* snippets under
python-systemd 235 (its own venv, ``python -I`` from a cwd outside the
checkout, so ``import systemd`` is python-systemd) and under this checkout's
drop-in (``sys.path[0]`` = the checkout). stdin: a pickle of
``{"cases": {name: source}, "paths": {...}, "checkout": str or None}``; each
source defines ``def case(journal, P)``. stdout: a pickle of
``{"module": journal.__file__, "results": {name: normalized result}}``.

Normalization keeps every value's type: ``Monotonic`` (a structseq whose
class cannot be pickled across the two) becomes ``("Monotonic", a, b)``,
exceptions ``("raised", type name, bases, errno, str)``, sets sorted lists.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any


def norm(v: Any) -> Any:
    if type(v).__name__ == "Monotonic" and isinstance(v, tuple):
        return ("Monotonic", norm(v[0]), norm(v[1]))
    if isinstance(v, dict):
        return {norm(k): norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, tuple):
        return tuple(norm(x) for x in v)
    if isinstance(v, (set, frozenset)):
        return ("set", sorted((norm(x) for x in v), key=repr))
    if isinstance(v, BaseException):
        return exc(v)
    return v


def exc(e: BaseException) -> tuple[Any, ...]:
    bases = sorted(
        c.__name__ for c in (OSError, ValueError, TypeError, KeyError, IndexError, LookupError,
                             MemoryError, SystemError, AttributeError) if isinstance(e, c)
    )  # fmt: skip
    return ("raised", type(e).__name__, bases, getattr(e, "errno", None), str(e))


def main() -> None:
    spec = pickle.load(sys.stdin.buffer)
    if spec.get("checkout"):
        sys.path.insert(0, spec["checkout"])
    import warnings

    warnings.simplefilter("ignore")
    from systemd import journal

    results = {}
    for name, src in spec["cases"].items():
        ns: dict[str, Any] = {}
        try:
            exec(compile(src, f"<case {name}>", "exec"), ns)
            results[name] = norm(ns["case"](journal, spec["paths"]))
        except BaseException as e:
            results[name] = exc(e)
    sys.stdout.buffer.write(pickle.dumps({"module": journal.__file__, "results": results}))


if __name__ == "__main__":
    main()
