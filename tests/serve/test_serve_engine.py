"""What a server needs of the pipeline: a vocabulary swapped while frames are in flight changes no frame
halfway (each is scored with the bank it started with); a source that dies still gets its frames in flight
finished; several streams share one PyTorch model from several threads and get the synchronous detections."""

from __future__ import annotations

import threading

import pytest

from hoi_edge.core.errors import InputFileError
from hoi_edge.pipeline.stream import StreamStats, predict_stream


def _key(dets):
    return [(d.hoi_name, d.score, d.human_box, d.object_box) for d in dets]


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    from hoi_edge import HOIDetector

    return HOIDetector.from_checkpoint(tiny_checkpoint)


class _GatedRunner:
    """The detector's runner, but once ``armed``, the next hoi_head call waits until the test lets it go."""

    def __init__(self, runner) -> None:
        self._runner, self.name = runner, runner.name
        self.entered, self.release = threading.Event(), threading.Event()
        self.armed = False

    def detector(self, images):
        return self._runner.detector(images)

    def clip_image(self, images):
        return self._runner.clip_image(images)

    def hoi_head(self, *args):
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(30)
        return self._runner.hoi_head(*args)


def test_a_vocabulary_swapped_mid_stream_changes_only_the_frames_started_after_it(detector, photo_rgb) -> None:
    from compress.bake import TextBaker
    from hoi_edge import HOIDetector
    from hoi_edge.data.vocabulary import vocabulary_from_text
    from hoi_edge.pipeline.detector import TextBank

    frames = photo_rgb[:4]
    classes = detector.spec.detector_classes
    baker = TextBaker(detector.runner.model, classes)
    vocab, emb = baker.bake(vocabulary_from_text("pet horse, ride bicycle", classes))
    old_bank, new_bank = detector.bank, TextBank.build(vocab, emb, classes)
    gated = _GatedRunner(detector.runner)
    det = HOIDetector(gated, detector.spec, old_bank.vocab, old_bank.embeddings)
    with_old = [_key(det.run(f).detections) for f in frames]
    det.set_text_bank(new_bank)
    with_new = [_key(det.run(f).detections) for f in frames]
    assert with_old != with_new and all(with_new)
    det.set_text_bank(old_bank)
    gated.armed = True

    def swap_while_frame_0_is_in_the_head() -> None:
        assert gated.entered.wait(30)
        det.set_text_bank(new_bank)          # frames 0 and 1 are in flight, 2 and 3 not started (depth 2)
        gated.release.set()

    swapper = threading.Thread(target=swap_while_frame_0_is_in_the_head, daemon=True)
    swapper.start()
    got = [_key(r.prediction.detections) for r in predict_stream(det, frames, depth=2)]
    swapper.join(10)
    assert got == with_old[:2] + with_new[2:]


def test_a_source_that_dies_still_gets_its_frames_in_flight_finished(detector, photo_rgb) -> None:
    def camera():
        yield from photo_rgb[:5]
        raise InputFileError("camera unplugged")

    stats, results = StreamStats(), []
    with pytest.raises(InputFileError, match="unplugged"):
        for r in predict_stream(detector, camera(), depth=3, stats=stats):
            results.append(r.index)
    assert results == [0, 1, 2, 3, 4] and stats.frames_done == stats.frames_read == 5


def test_streams_on_several_threads_share_one_pytorch_model(detector, photo_rgb) -> None:
    frames = photo_rgb[:4]
    expected = [_key(detector.run(f).detections) for f in frames]
    got: dict[int, list] = {}

    def stream(i: int) -> None:
        got[i] = [_key(r.prediction.detections) for r in predict_stream(detector, frames, depth=2)]

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == {0: expected, 1: expected, 2: expected}
