"""The `.ts` parser: unequal lengths, missing values, and errors naming file and line."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from model_training.emtc.ts_format import TsFormatError, load_ts, parse_ts_lines, to_fixed_length

GOOD = """# comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
1,?,3,4:0,0,0,0:down
"""


def test_parses_unequal_lengths_missing_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "Toy_TEST.ts.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(GOOD)
    series, labels, meta = load_ts(path)
    assert [s.shape for s in series] == [(3, 2), (4, 2)]
    assert list(labels) == ["up", "down"] and meta.dimensions == 2
    assert np.isnan(series[1][1, 0])
    fixed = to_fixed_length(series)
    assert fixed.shape == (2, 4, 2) and np.all(np.isfinite(fixed))
    np.testing.assert_allclose(fixed[0, :, 0], [1, 5 / 3, 7 / 3, 3])  # linear resampling 3 → 4
    np.testing.assert_allclose(fixed[1, :, 0], [1, 2, 3, 4])  # '?' filled by interpolation


@pytest.mark.parametrize(
    "body,line,needle",
    [
        ("1,2:3,4:5,6:up\n", 10, "3 dimensions"),
        ("1,x:3,4:up\n", 10, "not a number"),
        ("1,2:3,4:left\n", 10, "not in @classLabel"),
        ("1,2:3:up\n", 10, "unequal length"),
        ("1,2:3,4:up\n1,2,3:3,4,5:up\n1,2\n", 12, "missing class label"),
    ],
)
def test_malformed_data_lines_name_file_and_line(body: str, line: int, needle: str) -> None:
    text = GOOD.split("@data\n")[0] + "@data\n" + body
    with pytest.raises(TsFormatError) as err:
        parse_ts_lines(text.splitlines(), "bad.ts")
    assert err.value.line == line and f"bad.ts:{line}:" in str(err.value)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_data_section_and_bad_header() -> None:
    with pytest.raises(TsFormatError, match="no @data"):
        parse_ts_lines(["@problemName x", "@dimensions 1"], "f.ts")
    with pytest.raises(TsFormatError, match="f.ts:1:"):
        parse_ts_lines(["@dimensions two", "@data", "1,2"], "f.ts")
