"""The run record: one line of text that says what made an output, read back on reruns."""

from __future__ import annotations

from derain.record import RunRecord, input_identity

SHA = "ab" * 32


def test_format_and_parse_round_trip() -> None:
    record = RunRecord("danet (shipped weights)", SHA, "bf16", "0.1.0")
    text = record.format()
    assert (
        text
        == f"derain 0.1.0 (model danet (shipped weights); weights sha256:{SHA}; precision bf16)"
    )
    assert RunRecord.parse(text) == record


def test_records_without_precision_still_parse() -> None:
    """Outputs written before the precision was recorded."""
    old = f"derain 0.1.0 (model a/b.safetensors; weights sha256:{SHA})"
    assert RunRecord.parse(old) == RunRecord("a/b.safetensors", SHA, "", "0.1.0")


def test_not_a_record() -> None:
    assert RunRecord.parse("GIMP 2.10") is None
    assert RunRecord.parse(None) is None
    assert RunRecord.parse("derain sha256:0000 (another model)") is None
    assert RunRecord.is_record("derain sha256:0000 (another model)")


def test_same_weights_and_renamed() -> None:
    mine = RunRecord("/srv/models/x.safetensors", SHA, "fp32")
    assert mine.same_weights(RunRecord("danet", SHA, "bf16"))  # precision and name aside
    assert not mine.same_weights(RunRecord("danet", "cd" * 32, "fp32"))
    assert not RunRecord("x", "").same_weights(RunRecord("y", ""))
    served = mine.renamed("x")
    assert served.model == "x" and served.weights_sha256 == SHA and "/srv" not in served.format()


def test_input_identity_round_trips_and_decides_redo() -> None:
    """An output made from another input is redone, even when the same weights made it."""
    gray = input_identity("gray.png", 1234, 1_700_000_000_000_000_000)
    other = input_identity("p1.png", 1234, 1_700_000_000_000_000_000)
    assert gray != other and gray == input_identity("gray.png", 1234, 1_700_000_000_000_000_000)
    assert input_identity("gray.png", 1235, 1_700_000_000_000_000_000) != gray  # edited
    wanted = RunRecord("danet", SHA, "fp32").for_input(gray)
    assert RunRecord.parse(wanted.format()) == wanted and f"input {gray}" in wanted.format()
    assert wanted.why_redo(RunRecord("danet", SHA, "bf16", input=gray)) is None
    assert "another input" in str(wanted.why_redo(RunRecord("danet", SHA, input=other)))
    assert "another model" in str(wanted.why_redo(RunRecord("danet", "cd" * 32, input=gray)))
    assert "another model" in str(wanted.why_redo(None))
    # A record written before inputs were recorded still parses, and means "unknown input".
    old = RunRecord.parse(f"derain 0.1.0 (model danet; weights sha256:{SHA}; precision fp32)")
    assert old is not None and old.input == ""
    assert "does not say which input" in str(wanted.why_redo(old))
