import pytest

from fhir_server.mapping.hl7v2.encoding import CharsetError, codec_name, decode_message
from fhir_server.mapping.hl7v2.parser import parse_message

# 玕 (AB 5C) and 瑋 (AC 7C) carry "\" and "|" as their second GBK byte
NAME = "李玕瑋"


def _message(charset: str, name: str = NAME, title: str = "先生") -> str:
    return f"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|1|P|2.5||||||{charset}\rPID|1||X1||{name}^{title}||19900101|M\r"


def test_gbk_second_bytes_do_not_split_fields():
    raw = _message("GB 18030-2000").encode("gb18030")
    assert b"\x5c" in NAME.encode("gbk") and b"\x7c" in NAME.encode("gbk")
    # splitting the raw bytes would cut the name apart; decoding first keeps it whole
    assert len(raw.split(b"\r")[1].split(b"|")) > len(_message("").split("\r")[1].split("|"))
    decoded = decode_message(raw)
    pid = parse_message(decoded.text, decoded.codec).first("PID")
    assert decoded.codec == "gb18030"
    assert pid.get(5, 1) == NAME and pid.get(5, 2) == "先生" and pid.get(7) == "19900101"


def test_utf8_is_recognised_without_msh18():
    decoded = decode_message(_message("").encode("utf-8"))
    assert decoded.codec == "utf-8" and NAME in decoded.text and decoded.warnings == []


def test_gbk_without_msh18_falls_back_to_the_default_charset_with_a_warning():
    decoded = decode_message(_message("").encode("gb18030"))
    assert decoded.codec == "gb18030" and NAME in decoded.text
    assert any("MSH-18 is empty" in w for w in decoded.warnings)


def test_msh18_decides_when_the_endpoint_has_no_configuration():
    # valid UTF-8 bytes that are really Latin-1 text would be misread without MSH-18
    raw = _message("8859/1", "Müller", "Herr").encode("latin-1")
    decoded = decode_message(raw)
    assert decoded.codec == "latin-1" and "Müller" in decoded.text


def test_endpoint_charset_wins_and_a_contradicting_msh18_is_reported():
    raw = _message("UNICODE UTF-8").encode("gb18030")
    decoded = decode_message(raw, endpoint_charset="GBK")
    assert decoded.codec == "gb18030" and NAME in decoded.text
    assert any("endpoint is configured" in w for w in decoded.warnings)


def test_bytes_invalid_in_the_declared_charset_are_an_error():
    raw = _message("UNICODE UTF-8").encode("utf-8") + b"\xff\xfe"
    with pytest.raises(CharsetError):
        decode_message(raw, endpoint_charset="utf-8")


def test_unknown_msh18_is_an_error_without_endpoint_configuration():
    with pytest.raises(CharsetError, match="unknown character set"):
        decode_message(_message("KLINGON", "Wang", "Wu").encode("ascii"))


@pytest.mark.parametrize("value,codec", [("GBK", "gb18030"), ("GB 18030-2000", "gb18030"), ("UNICODE UTF-8", "utf-8"),
                                         ("ASCII", "ascii"), ("gb2312", "gb18030"), ("utf8", "utf-8")])
def test_charset_names(value, codec):
    assert codec_name(value) == codec


def test_sender_charset_configuration_overrides_a_wrong_msh18():
    from fhir_server.mapping.convert import Converter, MappingConfig
    from fhir_server.mapping.errors import MappingError

    raw = _message("UNICODE UTF-8").encode("gb18030")  # the HIS declares UTF-8 but writes GBK
    with pytest.raises(MappingError) as error:
        Converter().parse_v2(raw)
    assert error.value.reject and error.value.location == "MSH-18"
    message, warnings = Converter(MappingConfig(sender_charsets={"QXRMYY": "GBK"})).parse_v2(raw)
    assert message.first("PID").get(5, 1) == NAME and any("configured for gb18030" in w for w in warnings)
