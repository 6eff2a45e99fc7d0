"""The Data API's errors as AWS answers them: the exception codes, their HTTP statuses, and a SQL
or login failure worded per cluster kind with MySQL's error number."""

from __future__ import annotations

import pymysql

# The HTTP status of each Data API error, as the service model gives it
# (https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/CommonErrors.html and each
# operation's Errors section); moto takes the status from the response headers.
STATUS = {
    "BadRequestException": 400,
    "DatabaseErrorException": 400,
    "DatabaseNotFoundException": 404,
    "DatabaseResumingException": 400,
    "DatabaseUnavailableException": 504,
    "HttpEndpointNotEnabledException": 400,
    "InternalServerErrorException": 500,
    "InvalidSecretException": 400,
    "NotFoundException": 404,
    "SecretsErrorException": 400,
    "StatementTimeoutException": 400,
}
PROVISIONED, SERVERLESS_V1 = "provisioned", "serverless"
STATEMENT_TIMED_OUT = "The statement ran past the Data API's call timeout and was stopped"
TIMED_OUT_ERRORS = (1969, 3024)  # MariaDB's max_statement_time, MySQL's max_execution_time


class DataApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


def database_error(number: int, text: str, kind: str = PROVISIONED) -> DataApiError:
    """A SQL or login failure as the Data API reports it: `DatabaseErrorException` on
    provisioned and Serverless v2 clusters, `BadRequestException` only on Serverless v1 ("This
    error only appears in calls from Aurora Serverless v1 databases"), with MySQL's error number
    in the message as Aurora words it.
    https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
    """
    code = "BadRequestException" if kind == SERVERLESS_V1 else "DatabaseErrorException"
    return DataApiError(code, f"Database error code: {number}. Message: {text}")


def from_mysql(err: pymysql.MySQLError, kind: str) -> DataApiError:
    """MariaDB's error as the Data API's; a statement stopped by the statement timeout is
    `StatementTimeoutException`, as AWS answers it."""
    number = err.args[0] if err.args and isinstance(err.args[0], int) else 0
    if number in TIMED_OUT_ERRORS:
        return DataApiError("StatementTimeoutException", STATEMENT_TIMED_OUT)
    text = str(err.args[1]) if len(err.args) > 1 else str(err)
    return database_error(number, text, kind)
