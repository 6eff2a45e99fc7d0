"""Secrets Manager: the secret with a generated password, its attachment to the cluster, and
the rotation schedule, on moto's Secrets Manager backend."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from moto.rds.models import rds_backends
from moto.secretsmanager.models import secretsmanager_backends

from loanstack.emulator.base import Extension, tags


def sm(account_id: str, region: str) -> Any:
    return secretsmanager_backends[account_id][region]


def generated(backend: Any, spec: dict[str, Any]) -> str:
    """GenerateSecretString as Secrets Manager applies it."""
    reply = backend.get_random_password(
        password_length=int(spec.get("PasswordLength", 32)),
        exclude_characters=spec.get("ExcludeCharacters", ""),
        exclude_numbers=bool(spec.get("ExcludeNumbers")),
        exclude_punctuation=bool(spec.get("ExcludePunctuation")),
        exclude_uppercase=bool(spec.get("ExcludeUppercase")),
        exclude_lowercase=bool(spec.get("ExcludeLowercase")),
        include_space=bool(spec.get("IncludeSpace")),
        require_each_included_type=bool(spec.get("RequireEachIncludedType", True)),
    )
    password = json.loads(reply)["RandomPassword"]
    if "SecretStringTemplate" not in spec:
        return str(password)
    return json.dumps(
        {**json.loads(spec["SecretStringTemplate"]), spec["GenerateStringKey"]: password}
    )


class Secret(Extension):
    TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = ("Id",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend = sm(account_id, region)
        value = props.get("SecretString")
        if value is None:
            value = generated(backend, props.get("GenerateSecretString") or {})
        created = json.loads(
            backend.create_secret(
                name=name,
                secret_string=value,
                secret_binary=None,
                description=props.get("Description"),
                tags=tags(props),
                kms_key_id=props.get("KmsKeyId"),
                client_request_token=None,
                replica_regions=[],
                force_overwrite=False,
            )
        )
        return cls(created["ARN"], account_id, region, Id=created["ARN"])

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        sm(self.account_id, self.region).delete_secret(
            self.physical_id, recovery_window_in_days=None, force_delete_without_recovery=True
        )


class SecretTargetAttachment(Extension):
    """Adds the cluster's connection details to the secret, as Secrets Manager does."""

    TYPE = "AWS::SecretsManager::SecretTargetAttachment"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        if props.get("TargetType") != "AWS::RDS::DBCluster":
            raise ValueError(f"TargetType {props.get('TargetType')} is not emulated")
        backend = sm(account_id, region)
        cluster = rds_backends[account_id][region].clusters[props["TargetId"]]
        name = backend.secrets[props["SecretId"]].name  # moto's put_secret_value wants the name
        current = json.loads(backend.get_secret_value(name, None, "AWSCURRENT")["SecretString"])
        current.update(
            engine="mysql",
            host=cluster.endpoint,
            port=cluster.port,
            dbClusterIdentifier=cluster.db_cluster_identifier,
        )
        backend.put_secret_value(name, json.dumps(current), None, None, ["AWSCURRENT"])
        return cls(props["SecretId"], account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        """Nothing to undo: the secret goes with its own resource."""


class RotationSchedule(Extension):
    """Records the rotation configuration on the secret.

    The emulator never runs Lambda code by itself (moto would need Docker), so the schedule's
    deploy-time testSecret run is left to `loanstack rotate`, which drives the rotation
    function's four steps in process.
    """

    TYPE = "AWS::SecretsManager::RotationSchedule"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        secret = sm(account_id, region).secrets[props["SecretId"]]
        days = int((props.get("RotationRules") or {}).get("AutomaticallyAfterDays", 0))
        secret.rotation_requested = True  # moto only describes rotation settings after this
        secret.rotation_lambda_arn = props.get("RotationLambdaARN", "")
        secret.auto_rotate_after_days = days
        secret.rotation_enabled = days > 0
        secret.next_rotation_date = int(time.time()) + days * 86400
        return cls(secret.arn, account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        backend = sm(self.account_id, self.region)
        if self.physical_id in backend.secrets:
            secret = backend.secrets[self.physical_id]
            secret.rotation_enabled = False
            secret.rotation_lambda_arn = ""


def rotate_secret(
    self: Any,
    secret_id: str,
    client_request_token: str | None = None,
    rotation_lambda_arn: str | None = None,
    rotation_rules: dict[str, Any] | None = None,
    rotate_immediately: bool = True,
) -> str:
    """Rotation the way Secrets Manager runs it: the four steps with one token, each one a call
    of the rotation function; a failing step stops the rotation and leaves AWSCURRENT alone.
    (moto carries on past a failed step and then moves AWSCURRENT to a version that may have no
    value.) The steps run synchronously here, so the failure is also raised to the caller."""
    from moto.awslambda.utils import get_backend
    from moto.secretsmanager.exceptions import InvalidRequestException, SecretNotFoundException

    if secret_id not in self.secrets:
        raise SecretNotFoundException()
    secret = self.secrets[secret_id]
    pending = [v for v, d in secret.versions.items() if "AWSPENDING" in d["version_stages"]]
    if (
        any("AWSCURRENT" not in secret.versions[v]["version_stages"] for v in pending)
        and client_request_token not in pending
    ):
        raise InvalidRequestException(
            "A previous rotation isn't complete. That rotation will be reattempted."
        )
    secret.rotation_requested = True
    secret.rotation_lambda_arn = rotation_lambda_arn or secret.rotation_lambda_arn
    if rotation_rules and "AutomaticallyAfterDays" in rotation_rules:
        secret.auto_rotate_after_days = int(rotation_rules["AutomaticallyAfterDays"])
    secret.rotation_enabled = True
    if not secret.rotation_lambda_arn:
        raise InvalidRequestException(
            "No Lambda rotation function ARN is associated with this secret."
        )
    function: Any = get_backend(self.account_id, self.region_name).get_function(
        secret.rotation_lambda_arn
    )
    token = client_request_token or str(uuid.uuid4())
    if rotate_immediately and token not in secret.versions:
        # Secrets Manager labels the new version AWSPENDING (still without a value) first
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        secret.versions[token] = {
            "createdate": int(time.time()),
            "version_id": token,
            "version_stages": ["AWSPENDING"],
        }
    for step in (
        ("createSecret", "setSecret", "testSecret", "finishSecret")
        if rotate_immediately
        else ("testSecret",)
    ):
        payload, errored, _ = function._invoke_lambda(
            {"Step": step, "SecretId": secret.arn, "ClientRequestToken": token}
        )
        if errored:
            raise InvalidRequestException(
                f"rotation function failed in {step}: {json.loads(payload).get('errorMessage')}"
            )
    if rotate_immediately:
        secret.last_rotation_date = int(time.time())
    return json.dumps({"ARN": secret.arn, "Name": secret.name, "VersionId": token})
