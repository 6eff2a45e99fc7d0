"""Operations on a deployed stack: invoke, logs, rotate, migrate."""
