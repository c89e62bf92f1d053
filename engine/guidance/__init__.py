"""Who is in each frame: the guidance masks that tell InstMatt which person is which.

Three sources, one interface (``people(frame, image) -> Guide``, see :mod:`.base`):

- ``DetectorGuidance`` (:mod:`.detector`): Mask R-CNN finds the people; IDs come from
  the tracker (:mod:`.tracking`).
- ``MaskFolderGuidance`` (:mod:`.masks`): the artist's masks, ``DIR/<frame, 4
  digits>/<NN>.png`` (one image per person, ``NN`` = the person's number, so ``03.png``
  is ``person_03``; 8/16-bit, float or EXR; ``person_03.png`` works too). A frame folder
  may be empty (nobody there) but must exist. For a single image, ``DIR/<NN>.png``
  without a frame folder also works.
- ``PropagatedGuidance`` (:mod:`.propagated`): the artist's masks on keyframes only
  (``--masks KEYS --propagate``), carried to every other frame (:mod:`.layered`).
- ``DetectedPropagation`` (:mod:`.detected`): the detector as keyframe source
  (``--propagate`` alone): it runs on the first frame, every ``--detect-every`` frames and
  where the carry loses confidence; the people are carried in between.
- ``IndexGuidance`` (:mod:`.index`): one ID image per frame (a pattern such as
  ``ids.####.png``, a folder, or one file for a single frame): each pixel holds its
  person's number, 0 = nobody; 8/16-bit grey PNG/TIFF or EXR (e.g. Blender's IndexOB pass).

With artist guidance the artist's numbering is the ID; the tracker is not used.
"""

from __future__ import annotations

from engine.errors import UserError
from engine.settings import MatteSettings

from .base import Guidance, Guide
from .index import IndexGuidance
from .masks import ArrayGuidance, MaskFolderGuidance


def make_guidance(kind: str = "detector", path: str | None = None,
                  settings: MatteSettings | None = None, listener=None) -> Guidance:
    """Guidance from the CLI / protocol fields (the detector's settings from ``settings``;
    a detector fetched on first use reports its download to ``listener``)."""
    settings = settings or MatteSettings()
    if kind == "masks":
        if not path:
            raise UserError("guidance 'masks' needs a path: DIR/<frame, 4 digits>/<NN>.png")
        if settings.propagate:
            from .propagated import PropagatedGuidance

            return PropagatedGuidance(path)
        return MaskFolderGuidance(path)
    if kind == "index":
        if settings.propagate:
            raise UserError("propagate takes its keyframes from --masks KEYS or from the detector, not from ID images")
        if not path:
            raise UserError("guidance 'index' needs a path: a pattern such as ids.####.png")
        return IndexGuidance(path)
    if kind == "detector":
        from .detector import DetectorGuidance, PersonDetector

        detector = PersonDetector(settings.detector_weights, settings.score, settings.min_area, settings.device,
                                  size=settings.detector_size, progress=getattr(listener, "download", None),
                                  report=getattr(listener, "message", None))
        if settings.propagate:
            from .detected import DetectedPropagation

            return DetectedPropagation(detector, settings.detect_every)
        return DetectorGuidance(detector)
    raise UserError(f"unknown guidance kind {kind!r} (use detector, masks or index)")


__all__ = ["ArrayGuidance", "Guidance", "Guide", "IndexGuidance", "MaskFolderGuidance", "make_guidance"]
