"""Grow/Shrink and Feather for Blender 4.2-4.5, whose Dilate/Erode and Blur options are node
properties, not sockets, so a group input cannot drive them.

Built from what 4.2 can drive: a Blur node's "Size" input scales its radius. Feather is a
Gaussian blur whose radius is the Feather input. Grow is, per axis, a box blur of radius
2|g| followed by a step (Map Range): across a hard edge the blurred value falls linearly
over 2|g| pixels either side, so what is above 1/4 is the matte grown by |g| pixels and what
is above 3/4 is the matte shrunk by |g|; the alpha itself is kept inside (grow: the
maximum; shrink: the minimum). So Grow is exact on hard edges, square at corners (5.x
rounds them), the grown ring is solid (Feather softens it), and parts thinner than |g| grow
less. Grow 0 and Feather 0 change nothing.
"""

from __future__ import annotations

from .nodes import input_socket, new_node

GROW_RADIUS = 400  # the box blur's radius at Size 1: Grow up to 200 pixels
FEATHER_RADIUS = 200
_HALF_PIXEL = 0.25  # a little over the radius, so that a rounded-down radius is still right
# half-width of the threshold step: under the 1/(16 |g|) that separates the pixel just inside
# the grown edge from the one outside (|g| <= 200), so each axis gives a hard step and the
# second axis does not grow what the first left soft
STEP = 1e-4


def _math(group, operation, a, b=None, c=None, name="", location=(0, 0)):
    node = new_node(group, "ShaderNodeMath", "CompositorNodeMath")
    node.operation = operation
    node.name = node.label = name or operation.title()
    node.location = location
    for index, value in enumerate((a, b, c)):
        if value is None:
            continue
        if isinstance(value, (int, float)):
            node.inputs[index].default_value = float(value)
        else:
            group.links.new(value, node.inputs[index])
    return node.outputs[0]


def _mix(group, factor, a, b, name, location):
    """a + factor * (b - a)."""
    difference = _math(group, "SUBTRACT", b, a, name=f"{name} Delta", location=location)
    return _math(group, "MULTIPLY_ADD", factor, difference, a, name=name, location=(location[0] + 40, location[1]))


def _blur(group, value, filter_type, radius, size, name, location):
    """A blur of ``radius`` pixels times ``size``; ``radius`` is (x, y) or one number for both."""
    blur = group.nodes.new("CompositorNodeBlur")
    blur.name = blur.label = name
    blur.location = location
    blur.filter_type = filter_type
    blur.size_x, blur.size_y = radius if isinstance(radius, tuple) else (radius, radius)
    group.links.new(value, input_socket(blur, "Image", index=0))
    group.links.new(size, blur.inputs["Size"])
    return blur.outputs[0]


class LegacyControls:
    """The shared arithmetic of one group's Grow and Feather inputs; ``apply`` per person."""

    def __init__(self, group, grow, feather, location=(-900, 300)):
        x, y = location
        self.group = group
        magnitude = _math(group, "ABSOLUTE", grow, name="Grow Amount", location=(x, y))
        self.grow_on = _math(group, "MINIMUM", magnitude, 1.0, name="Grow On", location=(x + 60, y))
        self.shrink = _math(group, "LESS_THAN", grow, 0.0, name="Shrink", location=(x + 120, y))
        self.grow_size = _math(group, "MULTIPLY_ADD", magnitude, 2.0 / GROW_RADIUS, _HALF_PIXEL / GROW_RADIUS,
                               name="Grow Blur", location=(x + 180, y))
        # a step at 1/4 to grow, at 3/4 to shrink: Map Range from [t - STEP, t + STEP]
        self.from_min = _math(group, "MULTIPLY_ADD", self.shrink, 0.5, 0.25 - STEP, name="Grow From",
                              location=(x + 240, y))
        self.from_max = _math(group, "ADD", self.from_min, 2 * STEP, name="Grow To", location=(x + 300, y))
        self.feather_on = _math(group, "MINIMUM", feather, 1.0, name="Feather On", location=(x + 360, y))
        self.feather_size = _math(group, "MULTIPLY_ADD", feather, 1.0 / FEATHER_RADIUS,
                                  _HALF_PIXEL / FEATHER_RADIUS, name="Feather Blur", location=(x + 420, y))

    def grow(self, value, person, location):
        """Across, then down: a square grows one axis at a time, each exact on its own."""
        for index, axis in enumerate(("X", "Y")):
            value = self._grow_axis(value, f"{person} Grow {axis}", index, (location[0], location[1] - 60 * index))
        return value

    def _grow_axis(self, value, name, index, location):
        group, (x, y) = self.group, location
        radius = (GROW_RADIUS, 0) if index == 0 else (0, GROW_RADIUS)
        blurred = _blur(group, value, "FLAT", radius, self.grow_size, name, (x, y))
        threshold = new_node(group, "ShaderNodeMapRange", "CompositorNodeMapRange")
        threshold.name = threshold.label = f"{name} Threshold"
        threshold.location = (x + 40, y - 40)
        for attribute in ("clamp", "use_clamp"):
            if hasattr(threshold, attribute):
                setattr(threshold, attribute, True)
        group.links.new(blurred, input_socket(threshold, "Value", index=0))
        group.links.new(self.from_min, input_socket(threshold, "From Min", index=1))
        group.links.new(self.from_max, input_socket(threshold, "From Max", index=2))
        spread = threshold.outputs[0]
        grown = _math(group, "MAXIMUM", value, spread, name=f"{name} Grown", location=(x + 80, y))
        shrunk = _math(group, "MINIMUM", value, spread, name=f"{name} Shrunk", location=(x + 80, y - 40))
        either = _mix(group, self.shrink, grown, shrunk, f"{name} Grow Or Shrink", (x + 120, y))
        return _mix(group, self.grow_on, value, either, f"{name} Result", (x + 200, y))

    def feather(self, value, person, location):
        blurred = _blur(self.group, value, "GAUSS", FEATHER_RADIUS, self.feather_size, f"{person} Feather", location)
        return _mix(self.group, self.feather_on, value, blurred, f"{person} Feather Result",
                    (location[0] + 40, location[1]))
