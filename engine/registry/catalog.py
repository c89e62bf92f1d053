"""The models the engine knows, as data: where each comes from and how it is checked.

Adding a model (another checkpoint, a width-reduced network) is one more ``ModelSpec``
in ``MODELS``; the store, the ``instmatt models`` command, mirrors and Blender's
Models box pick it up from here.

Two kinds of source:
- ``drive_id``: a Google Drive file (the authors publish ``best_model.pth`` there);
- ``url``: a plain HTTP(S) file (torchvision's weights server).

Two kinds of check (``kind``), both strict loading of the real network:
- ``instmatt``: the authors' checkpoint loads into the InstMatt network of ``width`` with
  every key and shape matching (no published hash: the sha256 is recorded at first fetch);
- ``maskrcnn``: the state dict loads strictly into torchvision's
  ``maskrcnn_resnet50_fpn``; the sha256 must start with the prefix in the file's name
  (``-bf2d0c1e.pth``), the rule torch.hub applies to torchvision's files.
A studio mirror's ``models.json`` sha256 replaces the name prefix (it is authoritative).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# torch.hub's rule: the hex digits between the last '-' and the first '.' of the name
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")


@dataclass(frozen=True)
class ModelSpec:
    name: str                      # the registry name (``instmatt models fetch NAME``)
    what: str                      # one line for tables and Blender's preferences
    file: str                      # the file name in the cache and in mirrors
    kind: str                      # which strict check applies: "instmatt" or "maskrcnn"
    url: str | None = None         # plain HTTP(S) source
    drive_id: str | None = None    # Google Drive source
    width: float = 1.0             # kind "instmatt": the network width the file must fit
    approx_size: int | None = None  # bytes, for display before the file exists
    in_torch_hub: bool = False     # also present when torchvision's own cache holds the file
    used_for: str = ""             # which engine feature needs it (for error messages)

    @property
    def hash_prefix(self) -> str | None:
        """The sha256 prefix named in the file name (torchvision's convention), if any."""
        match = HASH_IN_NAME.search(self.file)
        return match.group(1) if match and self.kind == "maskrcnn" else None

    @property
    def source(self) -> str:
        return f"Google Drive file {self.drive_id}" if self.drive_id else str(self.url)


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec(
        name="instmatt",
        what="InstMatt network, the authors' released checkpoint (HIM2K-trained)",
        file="best_model.pth",
        kind="instmatt",
        drive_id="1i_zQEqSG2i86G2jSz2IxgbanfyWqu-BF",
        used_for="the matting network",
    ),
    ModelSpec(
        name="detector",
        what="Mask R-CNN ResNet-50 FPN, COCO (torchvision), finds the people",
        file="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        kind="maskrcnn",
        url="https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        approx_size=178_000_000,  # torchvision lists 169.8 MB
        in_torch_hub=True,
        used_for="the person detector",
    ),
)}


def get(name: str) -> ModelSpec:
    from engine.errors import UserError

    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}: the registry knows {', '.join(MODELS)}") from None


def names() -> list[str]:
    return list(MODELS)
