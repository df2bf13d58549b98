"""Compound mode on video: faces tracked from frame to frame and their landmarks smoothed, so that the aligned head
crops, and so the pasted cartoon heads, do not jitter.

A detector run on each frame alone gives landmarks that wobble by a pixel or two even on a still head; the head
crop is aligned to them, so the whole cartoon head shakes. :class:`FaceTracker` wraps the photo chain's detector
(anything with ``detect(rgb)``): each face is matched to the nearest track of the frame before and its box and
landmarks go through a One Euro filter (Casiez et al., CHI 2012), which smooths hard when a head is still and
follows with little lag when it moves. A face with no track nearby (a new person, a cut) starts a fresh one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..faces import DetectionResult, Face

MIN_CUTOFF = 1.0   # Hz: the filter's cut-off on a still head
BETA = 0.05        # cut-off added per pixel/second of landmark speed: quick moves are followed
D_CUTOFF = 1.0     # Hz: for the speed estimate itself
MATCH = 0.5        # a face continues a track if its centre moved less than this share of the face's size
FORGET = 5         # frames a track survives without its face (a missed detection does not restart the filter)


class _OneEuro:
    """The One Euro filter over an array of values, at a fixed frame rate."""

    def __init__(self, value: np.ndarray, rate: float):
        self.rate = rate
        self.value = value.astype(np.float64)
        self.speed = np.zeros_like(self.value)

    @staticmethod
    def _alpha(cutoff, rate: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * rate)

    def __call__(self, value: np.ndarray) -> np.ndarray:
        speed = (value - self.value) * self.rate
        a = self._alpha(D_CUTOFF, self.rate)
        self.speed = self.speed + a * (speed - self.speed)
        alpha = self._alpha(MIN_CUTOFF + BETA * np.abs(self.speed), self.rate)
        self.value = self.value + alpha * (value - self.value)
        return self.value


class _Track:
    def __init__(self, face: Face, rate: float):
        self.filter = _OneEuro(_pack(face), rate)
        self.centre = face.landmarks.mean(axis=0)
        self.missed = 0


class FaceTracker:
    """``detect(rgb)`` like the detector it wraps, for the frames of one clip in order, with each face's box and
    landmarks smoothed along its track. ``rate``: the clip's frames per second."""

    def __init__(self, detector, rate: float):
        self.detector = detector
        self.rate = float(rate)
        self.tracks: list[_Track] = []

    def detect(self, rgb: np.ndarray) -> DetectionResult:
        found = self.detector.detect(rgb)
        free = list(self.tracks)
        kept: list[_Track] = []
        faces = []
        for face in found.faces:  # highest score first: the clearest face claims its track first
            centre = face.landmarks.mean(axis=0)
            nearest = min(free, key=lambda t: float(np.linalg.norm(t.centre - centre)), default=None)
            if nearest is not None and np.linalg.norm(nearest.centre - centre) < MATCH * max(face.size, 1.0):
                free.remove(nearest)
                smoothed = _unpack(nearest.filter(_pack(face)), face)
                nearest.centre, nearest.missed = centre, 0
                kept.append(nearest)
            else:
                kept.append(_Track(face, self.rate))
                smoothed = face
            faces.append(smoothed)
        for track in free:  # not seen this frame: kept a little while in case the detector just missed it
            track.missed += 1
            if track.missed <= FORGET:
                kept.append(track)
        self.tracks = kept
        return dataclasses.replace(found, faces=faces)


def _pack(face: Face) -> np.ndarray:
    return np.concatenate([np.asarray(face.box, np.float64), face.landmarks.ravel()])


def _unpack(values: np.ndarray, face: Face) -> Face:
    return Face(box=tuple(float(v) for v in values[:4]), score=face.score, landmarks=values[4:].reshape(5, 2).copy())
