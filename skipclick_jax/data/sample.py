"""Per-sample object bookkeeping (the original's ``DSample``): stuff rule, areas, removal with re-parenting.

Objects live in an insertion-ordered dict ``id -> ObjectNode``. Removing an object never touches the
mask layers: its pixels stay there, so they still count as "some object" for the sampler's "other"
negatives and are not background (as in the original).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skipclick_jax.data.records import Record


@dataclass
class ObjectNode:
    """One object of a sample: where its label lives, its place in the hierarchy, its current area."""

    layer: int
    value: int
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    area: int = 0

    def copy(self) -> ObjectNode:
        return ObjectNode(self.layer, self.value, self.parent, list(self.children), self.area)


Objects = dict[int, ObjectNode]


def copy_objects(objects: Objects) -> Objects:
    return {k: v.copy() for k, v in objects.items()}


def load_objects(record: Record, rng: np.random.Generator, stuff_prob: float) -> tuple[np.ndarray, Objects]:
    """Builds the object tree of a record and applies the stuff rule (SPEC 4.1).

    With probability ``stuff_prob`` every stuff mask becomes an extra root object; otherwise stuff pixels are
    zeroed in (a copy of) the layers, so they turn into background. Returns (layers copy, objects).
    """
    table = record["objects"]
    layers = np.array(record["layers"], dtype=np.uint8)
    nodes: Objects = {}
    stuff_ids = []
    for i in range(len(table["layer"])):
        if table["is_stuff"][i]:
            stuff_ids.append(i)
            continue
        parent = int(table["parent"][i])
        nodes[i] = ObjectNode(int(table["layer"][i]), int(table["value"][i]), None if parent < 0 else parent)
    for i, node in nodes.items():
        if node.parent is not None:
            if node.parent not in nodes:
                raise ValueError(f"{record['sample_id']}: object {i} has a missing parent {node.parent}")
            nodes[node.parent].children.append(i)

    # The draw happens whenever stuff_prob > 0, even for images without stuff (as in the original).
    if stuff_prob > 0 and rng.random() < stuff_prob:
        for i in stuff_ids:
            nodes[i] = ObjectNode(int(table["layer"][i]), int(table["value"][i]))
    else:
        for i in stuff_ids:
            layer = layers[:, :, int(table["layer"][i])]
            layer[layer == int(table["value"][i])] = 0
    return layers, nodes


def compute_areas(layers: np.ndarray, objects: Objects) -> None:
    """Sets every object's pixel count; zeroes (in place) any label that belongs to no object.

    Labels without an object would otherwise count as "other object" pixels for the sampler; the
    original erases them the same way after every augmentation.
    """
    inverse = {(node.layer, node.value): obj_id for obj_id, node in objects.items()}
    for node in objects.values():
        node.area = 0
    for li in range(layers.shape[2]):
        layer = layers[:, :, li]
        counts = np.bincount(layer.reshape(-1), minlength=256)
        unmapped = []
        for label in np.flatnonzero(counts[1:]) + 1:
            obj_id = inverse.get((li, int(label)))
            if obj_id is None:
                unmapped.append(int(label))
            else:
                objects[obj_id].area = int(counts[label])
        if unmapped:
            lut = np.arange(256, dtype=layers.dtype)
            lut[unmapped] = 0
            layers[:, :, li] = lut[layer]


def remove_object(objects: Objects, obj_id: int) -> None:
    """Deletes an object; its children move to its parent (children of a removed root become roots)."""
    node = objects.pop(obj_id)
    for child in node.children:
        objects[child].parent = node.parent
    if node.parent is not None:
        parent = objects[node.parent]
        parent.children = [c for c in parent.children if c != obj_id] + node.children


def remove_small_objects(objects: Objects, min_area: int) -> None:
    """Removes every object with ``area < min_area`` (visiting them in insertion order)."""
    for obj_id in list(objects):
        if obj_id in objects and objects[obj_id].area < min_area:
            remove_object(objects, obj_id)


def root_objects(objects: Objects) -> list[int]:
    """Ids of objects without a parent, in insertion order."""
    return [obj_id for obj_id, node in objects.items() if node.parent is None]


def node_mask(layers: np.ndarray, node: ObjectNode) -> np.ndarray:
    """Boolean mask of one object."""
    return layers[:, :, node.layer] == node.value
