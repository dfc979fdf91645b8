"""The request bodies of the HTTP API: what a bad field answers (the server's tests send them end to end)."""

from __future__ import annotations

import pytest

from train.serve.protocol import ApiError, ChatCompletionRequest, CompletionRequest, parse_request


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


def test_a_body_that_is_not_an_object_says_so():
    for body in ("[1, 2]", '"hi"', "null"):
        err = error_of(CompletionRequest, body)
        assert err.param is None and "JSON object" in err.message


@pytest.mark.parametrize(
    "message, param, words",
    [
        ('{"role": "robot", "content": "hi"}', "messages[1].role", "'user'"),
        ('{"content": "hi"}', "messages[1].role", "Missing"),
        ('{"role": "user", "content": "hi", "mood": "sad"}', "messages[1].mood", "Unrecognized"),
        ('{"role": "user", "content": 5}', "messages[1].content", "valid string"),
    ],
)
def test_a_bad_message_is_named_by_its_index_and_field(message, param, words):
    # Was param "messages" for each, and an unknown key in a message read as an unknown request argument.
    body = f'{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}, {message}]}}'
    err = error_of(ChatCompletionRequest, body)
    assert err.param == param and param in err.message and words in err.message


@pytest.mark.parametrize(
    "option, switch",
    [
        ('"stream_options": {"include_usage": true}', '"stream": true'),  # no stream: no usage chunk
        ('"top_logprobs": 3', '"logprobs": true'),  # logprobs off: no alternatives
    ],
)
def test_options_whose_switch_is_off_are_refused_not_dropped(option, switch):
    body = '{"model": "m", "messages": [{"role": "user", "content": "hi"}], %s}'
    err = error_of(ChatCompletionRequest, body % option)
    assert err.param == option.split('"')[1] and switch.split('"')[1] in err.message
    parse_request(ChatCompletionRequest, (body % f"{switch}, {option}").encode())


def test_openai_fields_that_do_not_change_the_output_are_accepted():
    body = (
        '{"model": "m", "messages": [{"role": "user", "content": "hi"}], "store": false, '
        '"metadata": {"team": "a"}, "parallel_tool_calls": false}'
    )
    parse_request(ChatCompletionRequest, body.encode())
    for refused in ('"tools": []', '"logit_bias": {"1": 5}'):  # would change it: refused, not ignored
        assert error_of(ChatCompletionRequest, body[:-1] + f", {refused}}}").message.startswith(
            "Unrecognized"
        )


def test_an_image_part_is_refused_with_one_plain_reason():
    content = '[{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x"}}]'
    body = f'{{"model": "m", "messages": [{{"role": "user", "content": {content}}}]}}'
    err = error_of(ChatCompletionRequest, body)
    # Was: "Extra inputs are not permitted; or Field required; or Input should be 'text'; or ... string".
    assert err.param == "messages[0].content"
    assert err.message.endswith("part 1 has type 'image_url': this model takes only 'text' parts")
    ok = '[{"type": "text", "text": "look"}]'
    assert (
        parse_request(ChatCompletionRequest, body.replace(content, ok).encode()).messages[0].text() == "look"
    )


def test_more_than_16_stop_strings_are_refused():
    stops = ", ".join(f'"s{i}"' for i in range(17))
    err = error_of(CompletionRequest, f'{{"model": "m", "prompt": "x", "stop": [{stops}]}}')
    assert err.param == "stop" and "at most 16" in err.message
    sixteen = stops.rsplit(", ", 1)[0]
    parse_request(CompletionRequest, f'{{"model": "m", "prompt": "x", "stop": [{sixteen}]}}'.encode())
