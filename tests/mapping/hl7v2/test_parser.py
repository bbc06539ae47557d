import pytest

from fhir_server.mapping.hl7v2.parser import DEFAULT_SEPARATORS, V2ParseError, escape, parse_message, unescape

MSH = "MSH|^~\\&|HIS|QXRMYY|PLAT|SD|20261123093000||ADT^A04^ADT_A01|C1|P|2.5"


def test_fields_components_repetitions_and_subcomponents():
    message = parse_message(MSH + "\rPID|1||A1^^^QXRMYY&县人民医院^MR~B2^^^GMSFZ^ID||王^五||19800101\r")
    pid = message.first("PID")
    assert pid.get(3, 1) == "A1" and pid.get(3, 4) == "QXRMYY" and pid.get(3, 4, 2) == "县人民医院"
    assert pid.get(3, 1, repetition=2) == "B2" and pid.get(3, 5, repetition=2) == "ID"
    assert [r.get(1) for r in pid.repetitions(3)] == ["A1", "B2"]
    assert pid.get(5, 2) == "五" and pid.get(99) == "" and pid.get(5, 9) == ""
    assert message.message_type == ("ADT", "A04", "ADT_A01") and message.control_id == "C1" and message.version == "2.5"
    assert message.msh.get(1) == "|" and message.msh.get(2) == "^~\\&"


@pytest.mark.parametrize("terminator", ["\r", "\n", "\r\n"])
def test_segment_terminators(terminator):
    text = terminator.join([MSH, "PID|1||A1", "PV1|1|I"]) + terminator
    assert [s.name for s in parse_message(text).segments] == ["MSH", "PID", "PV1"]


def test_separators_come_from_msh():
    text = "MSH#*!@$#HIS#QXRMYY#####ADT*A04#C2#P#2.5\rPID#1##A1*^*X$Y!B2#\r"
    message = parse_message(text)
    assert message.separators.field == "#" and message.separators.component == "*"
    pid = message.first("PID")
    assert pid.get(3, 2) == "^" and pid.get(3, 3, 1) == "X" and pid.get(3, 3, 2) == "Y"
    assert pid.get(3, 1, repetition=2) == "B2"
    assert message.message_type[:2] == ("ADT", "A04")


def test_escape_sequences():
    seps = DEFAULT_SEPARATORS
    assert unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", seps) == "a|b^c&d~e\\f"
    assert unescape("\\H\\bold\\N\\ line\\.br\\next", seps) == "bold line\nnext"
    assert unescape("\\XB6AB\\岗", seps, "gb18030") == "东岗"
    assert unescape("\\XE4B8AD\\", seps, "utf-8") == "中"
    assert unescape("lone \\ backslash", seps) == "lone \\ backslash"
    assert unescape("\\Q\\unknown", seps) == "\\Q\\unknown"
    for text in ("a|b", "x^y&z~w", "back\\slash", "两行\n文本"):
        assert unescape(escape(text), seps) == text


def test_escaped_separators_are_not_split():
    pid = parse_message(MSH + "\rPID|1||A\\S\\1^^^X||名\\F\\字\r").first("PID")
    assert pid.get(3, 1) == "A^1" and pid.get(3, 4) == "X" and pid.get(5) == "名|字"


@pytest.mark.parametrize("text,where", [
    ("PID|1||A1\r", "MSH"),
    ("MSH|^~\r", "MSH-2"),
    ("MSH|^~^&|HIS|X|||20261123||ADT^A04|C|P|2.5\r", "MSH-2"),
    ("MSHA^~\\&|HIS\r", "MSH-1"),
    ("MSH|^~\\&|HIS|X|||20261123\r", "MSH"),
    ("MSH|^~\\&|HIS|X|||20261123||ADT^A04||P|2.5\r", "MSH-10"),
    (MSH + "\rpid|1\r", "segment 2"),
    (MSH + "\rPID^1^^A1\r", "segment 2"),
    (MSH + "\r" + MSH + "\r", "segment 2"),
])
def test_broken_messages_name_where(text, where):
    with pytest.raises(V2ParseError) as error:
        parse_message(text)
    assert error.value.location == where


def test_z_segments_are_kept():
    message = parse_message(MSH + "\rZRF|1|UP^上转\r")
    assert message.first("ZRF").get(2, 2) == "上转"
