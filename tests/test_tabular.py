"""CSV files as users write them: header or not, class labels as text, integers or booleans,
Windows line ends and byte-order marks; and every file the service must refuse, refused
with the field and the row at fault."""

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.core import SpecError
from service.tabular import Table, read_csv


def read(text: str | bytes, **options: Any) -> Table:
    data = text.encode() if isinstance(text, str) else text
    return read_csv(io.BytesIO(data), **options)


def refused(text: str | bytes, **options: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        read(text, **options)
    return caught.value


PETS = "weight,height,kind\n4.5,25,cat\n30,60,dog\n3.9,23,cat\n"


def test_a_named_label_column_of_strings_gives_labels_and_the_feature_names() -> None:
    table = read(PETS, label_column="kind")
    np.testing.assert_array_equal(table.inputs, [[4.5, 25], [30, 60], [3.9, 23]])
    assert table.inputs.dtype == np.float64
    assert table.targets is None
    assert table.labels is not None
    assert table.labels.classes == ("cat", "dog")
    np.testing.assert_array_equal(table.labels.indices, [0, 1, 0])
    assert table.feature_names == ("weight", "height")


def test_the_label_column_may_be_anywhere_and_the_features_keep_their_order() -> None:
    table = read("kind,weight,height\ncat,4.5,25\ndog,30,60\n", label_column="kind")
    np.testing.assert_array_equal(table.inputs, [[4.5, 25], [30, 60]])
    assert table.feature_names == ("weight", "height")


@pytest.mark.parametrize("header", ["a,label,b\n", ""])
def test_a_0_based_index_names_the_label_column_with_or_without_a_header(header: str) -> None:
    table = read(header + "1,cat,2\n3,dog,4\n", label_column=1)
    np.testing.assert_array_equal(table.inputs, [[1, 2], [3, 4]])
    assert table.labels is not None
    assert table.labels.classes == ("cat", "dog")
    assert table.feature_names == (("a", "b") if header else None)


def test_an_index_given_as_text_as_a_form_sends_it_works_too() -> None:
    table = read("1,2,0\n3,4,1\n", label_column="2")
    assert table.labels is not None
    assert table.labels.classes == (0, 1)


def test_integer_labels_stay_integers() -> None:
    table = read("x,digit\n0.5,7\n0.1,2\n0.9,7\n", label_column="digit")
    assert table.labels is not None
    assert table.labels.classes == (2, 7)
    assert all(type(name) is int for name in table.labels.classes)
    np.testing.assert_array_equal(table.labels.indices, [1, 0, 1])


def test_true_and_false_labels_are_booleans() -> None:
    table = read("x,spam\n1,true\n2,False\n3,TRUE\n", label_column="spam")
    assert table.labels is not None
    assert table.labels.classes == (False, True)
    np.testing.assert_array_equal(table.labels.indices, [1, 0, 1])


def test_without_a_label_column_the_last_columns_are_numeric_targets() -> None:
    table = read("a,b,y1,y2\n1,2,3,4\n5,6,7,8\n", n_targets=2)
    np.testing.assert_array_equal(table.inputs, [[1, 2], [5, 6]])
    assert table.targets is not None
    np.testing.assert_array_equal(table.targets, [[3, 4], [7, 8]])
    assert table.labels is None
    assert table.feature_names == ("a", "b")


def test_one_target_column_by_default_and_no_header_needed() -> None:
    table = read("1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(table.inputs, [[1, 2], [4, 5]])
    assert table.targets is not None
    np.testing.assert_array_equal(table.targets, [[3], [6]])
    assert table.feature_names is None


def test_windows_line_ends_a_byte_order_mark_and_blank_lines_are_read() -> None:
    data = b"\xef\xbb\xbf\r\nweight,kind\r\n4.5,cat\r\n\r\n30,dog\r\n\r\n"
    table = read(data, label_column="kind")
    np.testing.assert_array_equal(table.inputs, [[4.5], [30]])
    assert table.feature_names == ("weight",)
    assert table.labels is not None
    assert table.labels.classes == ("cat", "dog")


def test_old_mac_line_ends_are_read() -> None:
    table = read("a,y\r1,2\r3,4\r")
    np.testing.assert_array_equal(table.inputs, [[1], [3]])


def test_a_file_on_disk_is_read_like_an_upload(tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text(PETS)
    table = read_csv(path, label_column="kind")
    assert table.feature_names == ("weight", "height")


def test_numbers_are_read_exactly_as_python_reads_them() -> None:
    values = ["0.1", "1e-300", "123456789.123456789", "-2.5E3", "7"]
    table = read("a,y\n" + "".join(f"{value},0\n" for value in values))
    assert table.inputs[:, 0].tolist() == [float(value) for value in values]


# ----- refused ------------------------------------------------------------------------


def test_a_ragged_row_is_refused_naming_the_row() -> None:
    error = refused("a,b,kind\n1,2,cat\n3,4,dog\n5,dog\n", label_column="kind")
    assert error.field == "file"
    assert "row 3" in str(error)
    assert "2 columns" in str(error)


def test_text_in_a_feature_column_is_refused_naming_the_row_and_column() -> None:
    error = refused("weight,height,kind\n4.5,25,cat\n30,tall,dog\n", label_column="kind")
    assert error.field == "file"
    assert "row 2" in str(error)
    assert "'height'" in str(error)
    assert "'tall'" in str(error)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_nan_and_infinity_in_a_feature_are_refused_naming_the_row(value: str) -> None:
    error = refused(f"a,b,y\n1,2,3\n4,5,6\n7,{value},9\n")
    assert error.field == "file"
    assert "row 3" in str(error)
    assert "'b'" in str(error)


def test_an_empty_feature_cell_is_refused() -> None:
    error = refused("a,b,kind\n1,,cat\n", label_column="kind")
    assert error.field == "file"
    assert "row 1" in str(error)


def test_an_empty_label_is_refused() -> None:
    error = refused("a,kind\n1,cat\n2,\n", label_column="kind")
    assert error.field == "file"
    assert "row 2" in str(error)


def test_a_label_column_not_in_the_header_is_refused_naming_label_column() -> None:
    error = refused(PETS, label_column="species")
    assert error.field == "label_column"
    assert "'species'" in str(error)
    assert "kind" in str(error)  # the columns there are


def test_a_label_column_name_needs_a_header_row() -> None:
    error = refused("1,2,cat\n3,4,dog\n", label_column="kind")
    assert error.field == "label_column"
    assert "header" in str(error)


def test_a_label_column_index_outside_the_row_is_refused() -> None:
    error = refused(PETS, label_column=3)
    assert error.field == "label_column"
    assert "0 to 2" in str(error)


def test_label_column_and_targets_together_are_refused() -> None:
    assert refused(PETS, label_column="kind", n_targets=1).field == "label_column"


def test_targets_must_leave_an_input_column() -> None:
    assert refused("1,2\n3,4\n", n_targets=2).field == "targets"


@pytest.mark.parametrize("text", ["", "\n\n", "a,b,y\n", "a,b,y\n\n"])
def test_a_file_without_data_rows_is_refused(text: str) -> None:
    error = refused(text)
    assert error.field == "file"
    assert "no data rows" in str(error)


def test_a_file_that_is_not_utf8_is_refused() -> None:
    assert refused(b"caf\xe9,y\n1,2\n").field == "file"


def test_rows_above_the_limit_are_refused() -> None:
    error = refused("a,y\n" + "1,2\n" * 11, max_rows=10)
    assert error.field == "file"
    assert "10" in str(error)
    assert read("a,y\n" + "1,2\n" * 10, max_rows=10).inputs.shape == (10, 1)


def test_the_field_named_in_errors_is_the_callers() -> None:
    assert refused("a,y\n1,x\n", field="data.csv").field == "data.csv"


def test_a_wide_first_row_over_many_blank_lines_allocates_by_the_bytes() -> None:
    # 100,000 columns and 200,000 blank lines: rows x columns would be 160 GB of float64.
    data = ",".join(["1"] * 100_000) + "\n" + "\n" * 200_000
    table = read(data, n_targets=1)
    assert table.inputs.shape == (1, 99_999)


def test_a_bad_value_in_a_later_block_names_its_own_row() -> None:
    # Over 4 MB: the parser refuses a block well after the first.
    rows = ["1.25,2.5,3"] * 500_000
    rows[444_444] = "1.25,oops,3"
    error = refused("a,b,y\n" + "\n".join(rows) + "\n")
    assert "row 444445 column 'b'" in str(error)
