"""Signature checks against Twilio's published test vectors."""

from relaydesk.channels.twilio.signature import SignatureChecker, sign

DOC_URL = "https://example.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}


def test_twilio_documentation_example_signature() -> None:
    assert sign(DOC_URL, DOC_PARAMS, "12345") == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    checker = SignatureChecker("12345")
    assert checker.is_valid([DOC_URL], DOC_PARAMS, "L/OH5YylLD5NRKLltdqwSvS0BnU=")


def test_twilio_library_test_vector() -> None:
    # The vector shared by Twilio's helper libraries' RequestValidator tests.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {**DOC_PARAMS, "Caller": "+14158675309", "From": "+14158675309"}
    assert SignatureChecker("12345").is_valid([url], params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not SignatureChecker("12345").is_valid(
        [url + "&x=1"], params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


def test_wrong_token_url_or_params_are_rejected() -> None:
    good = sign(DOC_URL, DOC_PARAMS, "12345")
    assert not SignatureChecker("54321").is_valid([DOC_URL], DOC_PARAMS, good)
    assert not SignatureChecker("12345").is_valid(["https://example.com/other"], DOC_PARAMS, good)
    tampered = {**DOC_PARAMS, "Digits": "9999"}
    assert not SignatureChecker("12345").is_valid([DOC_URL], tampered, good)
    assert not SignatureChecker("12345").is_valid([DOC_URL], DOC_PARAMS, None)


def test_any_candidate_url_may_match() -> None:
    good = sign(DOC_URL, DOC_PARAMS, "12345")
    checker = SignatureChecker("12345")
    assert checker.is_valid(["http://internal:8000/myapp.php", DOC_URL], DOC_PARAMS, good)


def test_a_port_in_the_signed_url_or_the_received_one_still_matches() -> None:
    # Twilio may sign https://host:443/... while the request arrives as https://host/...
    # (and the other way round); the received URL is tried first, the variants after.
    with_port = "https://example.com:443/myapp.php?foo=1&bar=2"
    checker = SignatureChecker("12345")
    assert checker.is_valid([DOC_URL], DOC_PARAMS, sign(with_port, DOC_PARAMS, "12345"))
    assert checker.is_valid([with_port], DOC_PARAMS, sign(DOC_URL, DOC_PARAMS, "12345"))


def test_a_signature_header_with_odd_characters_is_refused_not_an_error() -> None:
    checker = SignatureChecker("12345")
    for forged in ("ż" * 28, "L/OH5YylLD5NRKLltdqwSvS0BnU=\x00", "\n", "\x00" * 28):
        assert not checker.is_valid([DOC_URL], DOC_PARAMS, forged)
