"""Chinese prompts over HTTP and through the SDK: labels stay the user's words, the answer says what the
model read (`concepts`), unknown words are a 400, vocabulary mode labels in Chinese, the glossary is
checked at start."""

from __future__ import annotations

import base64

import httpx
import pytest
from api_support import AUTH, PATH, BrightSegmenter, app_client, make_settings, png, upload
from fastapi.testclient import TestClient

from segserve.api import create_app
from segserve.client import Client
from segserve.errors import InvalidPromptError
from segserve.prompts import lexicon as lexicon_mod
from segserve.prompts.lexicon import GlossaryError


def test_chinese_concepts_keep_their_labels_and_the_answer_says_what_the_model_read(client, bright):
    r = upload(client, png(), prompt="人，紅色汽車、 car")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["label"] for s in body["segments"]] == ["人", "紅色汽車", "car"]
    assert body["concepts"] == [
        {"label": "人", "text": "person"},
        {"label": "紅色汽車", "text": "red car"},
        {"label": "car", "text": "car"},
    ]
    assert bright.calls[-1][1] == ["人", "紅色汽車", "car"]  # the engine gets the labels (and the texts)


def test_everything_mode_reports_no_concepts(client):
    assert upload(client, png(), prompt="").json()["concepts"] == []


def test_unknown_chinese_words_are_a_400_naming_them(client, bright):
    r = upload(client, png(), prompt="人, 魔法车")
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("invalid_prompt", "prompt")
    assert "魔法" in err["message"] and "SEGSERVE_GLOSSARY" in err["message"] and "SIGHUP" in err["message"]
    assert bright.calls == []  # refused before any inference


def test_the_glossary_adds_words_and_requests_do_not_reload_it(tmp_path):
    glossary = tmp_path / "glossary.tsv"
    glossary.write_text("魔法车\tmagic car\n", encoding="utf-8")
    with app_client(glossary=glossary) as c:
        loads = dict(lexicon_mod.STORE.loads)
        for _ in range(2):
            r = upload(c, png(), prompt="魔法车")
            assert r.json()["concepts"] == [{"label": "魔法车", "text": "magic car"}]
        assert lexicon_mod.STORE.loads == loads


def test_a_bad_glossary_stops_the_start_naming_its_lines(tmp_path, capsys):
    from segserve.api import serve

    glossary = tmp_path / "glossary.tsv"
    glossary.write_text("# ok\n魔法车\tmagic car\n魔法车 magic car\n", encoding="utf-8")
    with pytest.raises(GlossaryError, match="line 3:"):
        create_app(make_settings(glossary=glossary), BrightSegmenter())
    assert serve.run(make_settings(glossary=glossary), log_level="warning") == 2
    assert "line 3:" in capsys.readouterr().err


def test_the_openapi_schema_documents_the_extension_and_the_label_language(client):
    schema = client.get("/openapi.json").json()
    response = schema["components"]["schemas"]["SegmentationResponse"]["properties"]
    assert "concepts" in response and "extension" in response["concepts"]["description"]
    body = schema["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "zh" in str(body["properties"]["label_language"])


# --- the tiny model: vocabulary mode in Chinese, the SDK --------------------------------------------
def _sdk(test_client: TestClient) -> Client:
    def handle(request: httpx.Request) -> httpx.Response:
        r = test_client.request(request.method, str(request.url), headers=dict(request.headers), content=request.read())
        return httpx.Response(r.status_code, headers=r.headers.multi_items(), content=r.content)

    return Client("http://testserver", api_key=AUTH["Authorization"].split()[1], transport=httpx.MockTransport(handle))


def test_vocabulary_mode_labels_in_chinese_and_the_sdk_carries_the_concepts(tiny_segmenter, rgb_image):
    with app_client(tiny_segmenter, threshold=0.0, max_segments=5) as c, _sdk(c) as sdk:
        zh = sdk.segment(rgb_image, everything_mode="vocabulary", label_language="zh")
        en = sdk.segment(rgb_image, everything_mode="vocabulary")
        assert len(zh) == len(en) == 5 and zh.concepts == en.concepts == ()
        lexicon = lexicon_mod.get_lexicon()
        assert zh.labels == [lexicon.chinese_label(label) for label in en.labels]  # same segments, Chinese names

        result = sdk.segment(rgb_image, prompt="人, 戴安全帽的工人")
        assert [(k.label, k.text) for k in result.concepts] == [
            ("人", "person"),
            ("戴安全帽的工人", "worker wearing hard hat"),
        ]
        assert set(result.labels) <= {"人", "戴安全帽的工人"}
        with pytest.raises(InvalidPromptError, match="魔法"):
            sdk.segment(rgb_image, prompt="魔法车")


def test_the_label_language_setting_is_the_default(tiny_segmenter, rgb_image):
    from api_support import encode

    uri = "data:image/png;base64," + base64.b64encode(encode(rgb_image)).decode()
    fields = {"model": "sam3", "image": uri, "everything_mode": "vocabulary"}
    with app_client(tiny_segmenter, threshold=0.0, max_segments=3, label_language="zh") as c:
        labels = [s["label"] for s in c.post(PATH, headers=AUTH, json=fields).json()["segments"]]
        english = [
            s["label"] for s in c.post(PATH, headers=AUTH, json={**fields, "label_language": "en"}).json()["segments"]
        ]
    assert len(labels) == 3 and all(lexicon_mod.CJK.search(label) for label in labels)
    assert not any(lexicon_mod.CJK.search(label) for label in english)
