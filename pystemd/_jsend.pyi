from typing import Any, Callable, Optional, Union

STRICT: int
LOCATION: int
NO_JOURNALD: int
BAD_NAME: int
SOCKET_PATH: str
STDOUT_PATH: str
FIELDS_MAX: int
DATA_SIZE_MAX: int
FIELD_NAME_MAX: int

_Text = Union[str, bytes]

class FieldError(OSError, ValueError):
    def __init__(self, message: str) -> None: ...

def valid_field_name(name: _Text) -> bool: ...
def send(
    MESSAGE: _Text,
    MESSAGE_ID: Any = None,
    CODE_FILE: Optional[_Text] = None,
    CODE_LINE: Optional[int] = None,
    CODE_FUNC: Optional[_Text] = None,
    **fields: Any,
) -> None: ...
def compat_send(
    MESSAGE: _Text,
    MESSAGE_ID: Any = None,
    CODE_FILE: Optional[_Text] = None,
    CODE_LINE: Optional[int] = None,
    CODE_FUNC: Optional[_Text] = None,
    **fields: Any,
) -> None: ...
def sendv(*items: _Text, **fields: Any) -> None: ...
def compat_sendv(*items: _Text, **fields: Any) -> None: ...
def send_fields(
    message: _Text,
    message_id: Any,
    code_file: Optional[_Text],
    code_line: Optional[int],
    code_func: Optional[_Text],
    fields: Optional[dict[str, Any]],
    depth: int,
    flags: int,
) -> int: ...
def set_reporter(fn: Optional[Callable[[int, dict[str, Any], tuple[_Text, ...]], Any]]) -> None: ...
def caller(depth: int) -> Optional[tuple[str, int, str]]: ...
def socket_present() -> bool: ...
def reset() -> None: ...
def _socket_fd() -> int: ...
def stream_fd(identifier: Optional[_Text], priority: int, level_prefix: Any) -> int: ...
