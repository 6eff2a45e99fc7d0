"""What every emulator extension shares: a CloudFormation model backed by moto's own backends.

moto discovers CloudFormation models as the direct subclasses of its `CloudFormationModel`. An
`Extension` implements that interface without subclassing it, so moto never sees one by
itself: each subclass lands in `EXTENSIONS`, which the engine's model list (patches.py) adds
to moto's only while the emulator's patches are installed. Importing this package changes
nothing in moto.
"""

from __future__ import annotations

from typing import Any, ClassVar

EXTENSIONS: list[type[Extension]] = []


class Extension:
    """A resource type moto's CloudFormation does not model (or models unfaithfully).

    Subclasses set `TYPE`, `NAME_PROPERTY` and `ATTRIBUTES`, build the resource in `create` and
    remove it in `delete`; none overrides moto's interface below. An update replaces the resource, as CloudFormation does for the
    properties these types cannot change in place.
    """

    TYPE: ClassVar[str]
    NAME_PROPERTY: ClassVar[str] = ""
    ATTRIBUTES: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        EXTENSIONS.append(cls)

    def __init__(self, physical_id: str, account_id: str, region: str, **attributes: Any):
        self.physical_id = physical_id
        self.account_id = account_id
        self.region = region
        self.attributes = attributes

    # moto's CloudFormationModel interface (moto.core.common_models)
    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.ATTRIBUTES:
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()
        return self.attributes[attribute_name]

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    def is_created(self) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Extension:
        props = cloudformation_json.get("Properties", {})
        return cls.create(resource_name, props, account_id, region_name, **kwargs)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Extension,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Extension:
        original_resource.delete()
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        """moto falls back to this when `delete` raised TypeError/AttributeError: surface it."""
        raise RuntimeError(f"{cls.TYPE} {resource_name}: delete failed inside the extension")

    # what each extension implements
    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        """Build the resource. `request`: what moto's stack passes on a create (LogicalId,
        StackId, ResourceType), for an extension that answers CloudFormation's own request."""
        raise NotImplementedError

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        raise NotImplementedError


def tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return list(props.get("Tags") or [])
