"""API errors of kvs-local.

A handler raises ``KvsError``; the server turns it into the HTTP status, the header
``x-amzn-ErrorType: <type_>`` and the body ``{"Message": message, "__type": type_}``.
"""


class KvsError(Exception):
    def __init__(self, status: int, type_: str, message: str):
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type_ = type_
        self.message = message


def not_found(message: str = "The requested stream is not found or not active.") -> KvsError:
    return KvsError(404, "ResourceNotFoundException", message)


def invalid_argument(message: str) -> KvsError:
    return KvsError(400, "InvalidArgumentException", message)


def client_limit(api: str, resource: str) -> KvsError:
    return KvsError(400, "ClientLimitExceededException",
                    f"Limit exceeded on number of requests for {api} API for resource '{resource}'")
