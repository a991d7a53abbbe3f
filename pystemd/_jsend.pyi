from typing import Any, Optional, Union

STRICT: int
LOCATION: int
NO_JOURNALD: int
BAD_NAME: int
SOCKET_PATH: str
STDOUT_PATH: str
FIELDS_MAX: int
DATA_SIZE_MAX: int
FIELD_NAME_MAX: int

class FieldError(OSError, ValueError):
    def __init__(self, message: str) -> None: ...

def valid_field_name(name: Union[str, bytes]) -> bool: ...
def send(
    message: Union[str, bytes],
    message_id: Any,
    code_file: Optional[Union[str, bytes]],
    code_line: Optional[int],
    code_func: Optional[Union[str, bytes]],
    fields: Optional[dict[str, Any]],
    depth: int,
    flags: int,
) -> int: ...
def sendv(
    items: tuple[Union[str, bytes], ...], fields: Optional[dict[str, Any]], flags: int
) -> int: ...
def caller(depth: int) -> Optional[tuple[str, int, str]]: ...
def socket_present() -> bool: ...
def stream_fd(identifier: Optional[Union[str, bytes]], priority: int, level_prefix: Any) -> int: ...
