"""The request bodies of the HTTP API: what a bad field answers (the server's tests send them end to end)."""

from __future__ import annotations

import pytest

from train.serve.protocol import ApiError, CompletionRequest, parse_request


def error_of(model: type, body: str) -> ApiError:
    with pytest.raises(ApiError) as err:
        parse_request(model, body.encode())
    assert err.value.status == 400
    return err.value


@pytest.mark.parametrize(
    "field, value",
    [("temperature", "NaN"), ("top_p", "NaN"), ("repetition_penalty", "Infinity"), ("min_p", "-Infinity")],
)
def test_nan_and_infinity_are_refused_as_not_finite(field, value):
    # Infinity passed every bound and reached the sampler; NaN failed each bound with a wrong reason.
    err = error_of(CompletionRequest, f'{{"model": "m", "prompt": "x", "{field}": {value}}}')
    assert err.param == field and "finite" in err.message


def test_a_seed_past_64_bits_is_refused_and_the_largest_is_taken():
    err = error_of(CompletionRequest, '{"model": "m", "prompt": "x", "seed": 100000000000000000000000}')
    assert err.param == "seed"
    req = parse_request(
        CompletionRequest, b'{"model": "m", "prompt": "x", "seed": 9223372036854775807, "n": 16}'
    )
    assert req.sampling_params(16, None, 15).seed == 2**63 + 14  # n's seeds still fit torch's generator
