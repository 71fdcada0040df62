"""Pretrained tags of the registered names: checks on a ``name.tag``."""
import timm

__all__ = ['check_pretrained_tag']


def check_pretrained_tag(name: str) -> None:
    """ValueError naming ``model_name`` when ``name`` (``arch.tag``) has a tag its architecture does not register."""
    arch, _, tag = name.partition('.')
    if not tag:
        return
    tags = timm.list_pretrained(arch + '.*')
    if name not in tags:
        raise ValueError(f'model_name {name!r}: {arch} has no pretrained tag {tag!r}; tags: {tags}')
