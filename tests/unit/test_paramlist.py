import pytest

from ccip_ops import paramlist
from ccip_ops.exceptions import InputError


def write(tmp_path, text):
    p = tmp_path / "CCIP_parameter.list"
    p.write_text(text)
    return p


def test_grammar(tmp_path):
    p = write(tmp_path, "# comment\nimagename = 'VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1'  # trailing\n"
                        "no equals sign here\nspw=['2,3', '4']\nimsize=[320, 320]\nphasecenter='J2000 00:50:00 -02.30.00'\n"
                        "threshold = 'a=b'\n")
    d = paramlist.parse(p)
    assert d["imagename"] == "VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1"
    assert d["spw"] == ["2,3", "4"] and d["imsize"] == [320, 320]
    assert d["threshold"] == "a=b"  # split at the first '='


def test_unknown_key_names_file_line_key(tmp_path):
    p = write(tmp_path, "imagename='x'\nfoo_bar = 3\n")
    with pytest.raises(InputError, match=r"CCIP_parameter.list:2: unknown parameter 'foo_bar'"):
        paramlist.parse(p)


def test_unquoted_string(tmp_path):
    p = write(tmp_path, "imaging_mode = VLASS-SE-CUBE\n")
    with pytest.raises(InputError, match=r":1: value of 'imaging_mode' is not a Python literal"):
        paramlist.parse(p)


def test_code_is_never_evaluated(tmp_path):
    p = write(tmp_path, "imagename = __import__('os').system('touch pwned')\n")
    with pytest.raises(InputError):
        paramlist.parse(p)
    assert not (tmp_path / "pwned").exists()


def test_wrong_type(tmp_path):
    p = write(tmp_path, "robust = 'one'\n")
    with pytest.raises(InputError, match=r"'robust' must be int or float"):
        paramlist.parse(p)


@pytest.mark.parametrize("groups, msg", [
    (["2:0~15"], "'2:0~15' is not comma-separated integer spw ids"),
    (["1~4"], "'1~4' is not comma-separated"),
    (["2,x"], "'2,x' is not comma-separated"),
    ([], "empty list"),
    ("2,3,4", "must be a list of spw groups"),
    ([2, 3], "group 2 is not"),
])
def test_bad_spw_groups(groups, msg):
    with pytest.raises(InputError, match=msg.replace("(", r"\(").replace("~", "~")):
        paramlist.validate_spw_groups(groups)


def test_good_spw_groups():
    assert paramlist.validate_spw_groups(["2", "3,4,5", "17"]) == ["2", "3,4,5", "17"]
