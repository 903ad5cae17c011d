"""Canonical JSONL records, prepared splits and NER sub-word alignment, with the real
tokenizer of a tiny BERT and the MangaAssist corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtl_registry.data.prepared import check_labels, load_data_dirs, targets
from mtl_registry.data.records import data_fingerprint, load_splits, read_jsonl
from mtl_registry.encoder import SharedEncoder
from mtl_registry.errors import DataError
from mtl_registry.heads.intent import IntentHead
from mtl_registry.heads.ner import IGNORE, NerHead, spans_from_tags, word_tags
from mtl_registry.heads.sentiment import SentimentHead

PARSERS = {
    "intent": IntentHead().parse,
    "sentiment": SentimentHead().parse,
    "entities": NerHead().parse,
}
BERSERK = "is vol 12 of berserk back"  # berserk -> be ##rse ##rk, characters 13-20
CHAINSAW = "i love chainsaw man by tatsuki fujimoto"  # chains ##aw man / ta ##tsu ##ki fuji ##moto
TITLED = [  # the two texts above, their titles and creator labelled
    {"text": BERSERK, "entities": [{"start": 13, "end": 20, "label": "TITLE"}]},
    {
        "text": CHAINSAW,
        "entities": [
            {"start": 7, "end": 19, "label": "TITLE"},
            {"start": 23, "end": 39, "label": "CREATOR"},
        ],
    },
]


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path) -> SharedEncoder:
    return SharedEncoder.load(tiny_bert)


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def data_dir(root: Path, train: list, dev: list) -> Path:
    write_lines(root / "train.jsonl", train)
    write_lines(root / "dev.jsonl", dev)
    return root


def raises_data_error(path: Path, parsers=PARSERS) -> DataError:
    with pytest.raises(DataError) as info:
        read_jsonl(path, parsers)
    return info.value


# ---- records: errors name file, line and field --------------------------------------------
def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {"text": "hi", "intent": "greeting_chitchat"},
            {"text": "hello", "intent": "greeting_chitchat"},
            '{"text": "broken", "intent": ',
            {"text": "after", "intent": "greeting_chitchat"},
        ],
    )
    err = raises_data_error(path)
    assert (err.path, err.line) == (str(path), 3)
    assert str(err).startswith(f"{path}:3: ") and "not valid JSON" in str(err)


def test_record_that_is_not_an_object_names_its_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.jsonl", [{"text": "ok"}, '["text", "x"]'])
    err = raises_data_error(path)
    assert err.line == 2 and "JSON object" in str(err)


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_text_names_line_and_field(tmp_path: Path, text: str) -> None:
    path = write_lines(tmp_path / "dev.jsonl", [{"text": "fine"}, {"text": text, "intent": "x"}])
    err = raises_data_error(path)
    assert (err.path, err.line, err.field) == (str(path), 2, "text")
    assert f"{path}:2: field 'text'" in str(err) and "empty" in str(err)


@pytest.mark.parametrize("record", [{"intent": "order_status"}, {"text": 12}, {"text": None}])
def test_missing_or_non_string_text_names_field(tmp_path: Path, record: dict) -> None:
    err = raises_data_error(write_lines(tmp_path / "train.jsonl", [record]))
    assert (err.line, err.field) == (1, "text")


def test_non_list_sentiment_names_line_and_field(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {"text": "ok", "sentiment": []},
            {"text": "hurry up", "sentiment": "urgency"},
        ],
    )
    err = raises_data_error(path)
    assert (err.path, err.line, err.field) == (str(path), 2, "sentiment")
    assert f"{path}:2: field 'sentiment'" in str(err) and "'urgency'" in str(err)


def test_entity_offsets_outside_the_text_are_an_error(tmp_path: Path) -> None:
    text = "any berserk?"
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {"text": text, "entities": [{"start": 4, "end": 11, "label": "TITLE"}]},
            {"text": text, "entities": [{"start": 4, "end": 40, "label": "TITLE"}]},
        ],
    )
    err = raises_data_error(path)
    assert (err.line, err.field) == (2, "entities")
    assert "4-40 outside the text (length 12)" in str(err)
    assert str(err).startswith(f"{path}:2: field 'entities'")


def test_negative_entity_offset_is_an_error(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [{"text": "berserk", "entities": [{"start": -1, "end": 3, "label": "T"}]}],
    )
    assert "outside the text" in str(raises_data_error(path))


@pytest.mark.parametrize(
    "bad",
    [
        {"start": 0, "end": True},
        {"start": False, "end": 3},
        {"start": 0.0, "end": 3},
        {"start": "0", "end": 3},
    ],
)
def test_non_integer_entity_offsets_are_an_error(tmp_path: Path, bad: dict) -> None:
    path = write_lines(
        tmp_path / "train.jsonl", [{"text": "berserk", "entities": [{**bad, "label": "TITLE"}]}]
    )
    err = raises_data_error(path)
    assert (err.line, err.field) == (1, "entities") and "must be integers" in str(err)


def test_overlapping_entities_are_an_error(tmp_path: Path) -> None:
    text = "attack on titan by isayama"
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {
                "text": text,
                "entities": [
                    {"start": 10, "end": 15, "label": "TITLE"},
                    {"start": 0, "end": 15, "label": "TITLE"},
                ],
            }
        ],
    )
    err = raises_data_error(path)
    assert (err.line, err.field) == (1, "entities")
    assert "0-15 and 10-15 overlap" in str(err)


def test_adjacent_entities_do_not_overlap(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {
                "text": "ab cd",
                "entities": [
                    {"start": 3, "end": 5, "label": "GENRE"},
                    {"start": 0, "end": 2, "label": "TITLE"},
                ],
            }
        ],
    )
    ds = read_jsonl(path, PARSERS)
    assert ds[0]["entities"] == [
        {"start": 0, "end": 2, "label": "TITLE"},
        {"start": 3, "end": 5, "label": "GENRE"},
    ]


def test_missing_dev_split_names_the_directory(tmp_path: Path) -> None:
    folder = tmp_path / "intent_data"
    write_lines(folder / "train.jsonl", [{"text": "hi", "intent": "greeting_chitchat"}])
    with pytest.raises(DataError) as info:
        load_splits(folder, PARSERS)
    assert info.value.path == str(folder) and "missing dev.jsonl" in str(info.value)
    assert set(load_splits(folder, PARSERS, required=("train",))) == {"train"}


def test_missing_data_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        load_splits(tmp_path / "nope", PARSERS)
    assert info.value.path == str(tmp_path / "nope")


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            "",
            {"text": "first", "intent": "a"},
            "   ",
            "",
            {"text": "second", "intent": "b"},
        ],
    )
    ds = read_jsonl(path, PARSERS)
    assert list(ds["text"]) == ["first", "second"]
    assert list(ds["line"]) == [2, 5]
    bad = write_lines(tmp_path / "bad.jsonl", [{"text": "x"}, "", "", {"text": ""}])
    assert raises_data_error(bad).line == 4


def test_only_blank_lines_is_an_error(tmp_path: Path) -> None:
    err = raises_data_error(write_lines(tmp_path / "train.jsonl", ["", "  "]))
    assert err.path == str(tmp_path / "train.jsonl") and "no records" in str(err)


def test_records_carrying_some_fields_get_none_for_the_others(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {"text": "where is my order", "intent": "order_status"},
            {"text": "so happy", "sentiment": ["satisfaction"]},
            {"text": "meh", "sentiment": []},
            {"text": "berserk", "entities": [{"start": 0, "end": 7, "label": "TITLE"}]},
        ],
    )
    ds = read_jsonl(path, PARSERS)
    assert list(ds["intent"]) == ["order_status", None, None, None]
    assert list(ds["sentiment"]) == [None, ["satisfaction"], [], None]  # [] = neutral, not missing
    assert list(ds["entities"]) == [None, None, None, [{"start": 0, "end": 7, "label": "TITLE"}]]


def test_unknown_dev_label_names_file_line_and_field(
    tmp_path: Path, encoder: SharedEncoder
) -> None:
    folder = data_dir(
        tmp_path / "d",
        train=[
            {"text": "hi", "intent": "greeting_chitchat"},
            {"text": "where is it", "intent": "order_status"},
        ],
        dev=[
            {"text": "hello", "intent": "greeting_chitchat"},
            {"text": "refund me", "intent": "return_refund"},
        ],
    )
    head = IntentHead()
    prepared = load_data_dirs(encoder, {"intent": (head, folder)})[folder.resolve()]
    labels = head.label_set(list(prepared.splits["train"].values("intent")))
    check_labels(prepared.splits["train"], head, labels)
    with pytest.raises(DataError) as info:
        check_labels(prepared.splits["dev"], head, labels)
    err = info.value
    assert (err.path, err.line, err.field) == (str(folder.resolve() / "dev.jsonl"), 2, "intent")
    assert "return_refund" in str(err)


def test_unknown_dev_entity_type_is_reported(tmp_path: Path, encoder: SharedEncoder) -> None:
    folder = data_dir(
        tmp_path / "d",
        train=[{"text": "berserk", "entities": [{"start": 0, "end": 7, "label": "TITLE"}]}],
        dev=[
            {"text": "x"},
            {"text": "by miura", "entities": [{"start": 3, "end": 8, "label": "CREATOR"}]},
        ],
    )
    head = NerHead()
    prepared = load_data_dirs(encoder, {"ner": (head, folder)})[folder.resolve()]
    labels = head.label_set([v for v in prepared.splits["train"].values("entities") if v])
    with pytest.raises(DataError) as info:
        check_labels(prepared.splits["dev"], head, labels)
    assert (info.value.line, info.value.field) == (2, "entities")
    assert "CREATOR" in str(info.value)


def test_entity_cutting_a_word_in_half_is_an_error(tmp_path: Path, encoder: SharedEncoder) -> None:
    folder = data_dir(
        tmp_path / "d",
        train=[
            {"text": "hello"},
            {"text": BERSERK, "entities": [{"start": 13, "end": 18, "label": "TITLE"}]},
        ],
        dev=[{"text": "x"}],
    )
    head = NerHead()
    split = load_data_dirs(encoder, {"ner": (head, folder)})[folder.resolve()].splits["train"]
    with pytest.raises(DataError) as info:
        targets(split, head, ["O", "B-TITLE", "I-TITLE"])
    err = info.value
    assert (err.path, err.line, err.field) == (str(folder.resolve() / "train.jsonl"), 2, "entities")
    assert "does not fall on word boundaries" in str(err)
    assert "'berse'" in str(err) and "'berserk' (13-20)" in str(err)


def test_data_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    folder = data_dir(
        tmp_path / "d", train=[{"text": "a", "intent": "x"}], dev=[{"text": "b", "intent": "x"}]
    )
    first = data_fingerprint(folder)
    assert data_fingerprint(folder) == first
    dev = folder / "dev.jsonl"
    original = dev.read_bytes()
    dev.write_bytes(original.replace(b'"b"', b'"c"'))
    assert data_fingerprint(folder) != first
    dev.write_bytes(original)
    assert data_fingerprint(folder) == first
    write_lines(folder / "test.jsonl", [{"text": "t", "intent": "x"}])
    assert data_fingerprint(folder) != first


def test_data_fingerprint_tells_splits_apart(tmp_path: Path) -> None:
    same = [{"text": "a", "intent": "x"}]
    one = data_dir(tmp_path / "one", train=same, dev=[{"text": "b", "intent": "x"}])
    two = data_dir(tmp_path / "two", train=[{"text": "b", "intent": "x"}], dev=same)
    assert data_fingerprint(one) != data_fingerprint(two)


# ---- NER alignment --------------------------------------------------------------------------
def test_word_tags_and_spans_round_trip_on_mangaassist(
    manga_data: Path, encoder: SharedEncoder
) -> None:
    n_entities = n_multiword = 0
    for split in ("train", "dev", "test"):
        ds = read_jsonl(manga_data / f"{split}.jsonl", {"entities": NerHead().parse})
        texts = list(ds["text"])
        for enc, gold, line in zip(encoder.tokenize(texts), ds["entities"], ds["line"]):
            gold = gold or []
            spans = spans_from_tags(enc, word_tags(enc, gold))
            where = f"{split}.jsonl:{line} {enc.text!r}"
            assert [(s["start"], s["end"], s["label"]) for s in spans] == [
                (g["start"], g["end"], g["label"]) for g in gold
            ], where
            for s in spans:
                assert enc.text[s["start"] : s["end"]] == s["text"], where
            n_entities += len(gold)
            n_multiword += sum(" " in enc.text[g["start"] : g["end"]] for g in gold)
    assert n_entities > 50 and n_multiword > 10  # the corpus really exercises the alignment


def test_spans_from_tags_reads_stray_inside_tags_as_new_entities(encoder: SharedEncoder) -> None:
    [enc] = encoder.tokenize([CHAINSAW])  # words: i love chainsaw man by tatsuki fujimoto
    tags = ["O", "I-TITLE", "B-TITLE", "I-TITLE", "O", "B-CREATOR", "I-TITLE"]
    assert [(s["text"], s["label"]) for s in spans_from_tags(enc, tags)] == [
        ("love", "TITLE"),
        ("chainsaw man", "TITLE"),
        ("tatsuki", "CREATOR"),
        ("fujimoto", "TITLE"),
    ]


def ner_split(tmp_path: Path, encoder: SharedEncoder, records: list[dict]):
    folder = data_dir(tmp_path / "ner", train=records, dev=[{"text": "x"}])
    return load_data_dirs(encoder, {"ner": (NerHead(), folder)})[folder.resolve()].splits["train"]


def test_ner_target_labels_only_first_sub_token_of_each_word(
    tmp_path: Path, encoder: SharedEncoder
) -> None:
    split = ner_split(
        tmp_path,
        encoder,
        [*TITLED, {"text": "no labels here"}],
    )
    tokens = [encoder.tokenizer.convert_ids_to_tokens(e.input_ids) for e in split.encoded[:2]]
    assert tokens[0] == ["[CLS]", "is", "vol", "12", "of", "be", "##rse", "##rk", "back", "[SEP]"]
    assert tokens[1] == [
        "[CLS]",
        "i",
        "love",
        "chains",
        "##aw",
        "man",
        "by",
        "ta",
        "##tsu",
        "##ki",
        "fuji",
        "##moto",
        "[SEP]",
    ]
    head = NerHead()
    labels = head.label_set([v for v in split.values("entities") if v])
    assert labels == ["O", "B-CREATOR", "I-CREATOR", "B-TITLE", "I-TITLE"]
    o, bc, ic, bt, it, x = 0, 1, 2, 3, 4, IGNORE
    berserk, chainsaw, unlabelled = targets(split, head, labels)
    assert berserk.tolist() == [x, o, o, o, o, bt, x, x, o, x]
    assert chainsaw.tolist() == [x, o, o, bt, x, it, o, bc, x, x, ic, x, x]
    assert unlabelled is None


def test_ner_loss_ignores_padding_and_continuation_logits(
    tmp_path: Path, encoder: SharedEncoder
) -> None:
    split = ner_split(
        tmp_path,
        encoder,
        TITLED,
    )
    head = NerHead()
    labels = head.label_set(list(split.values("entities")))
    batch = head.collate(targets(split, head, labels))
    ids, mask = encoder.collate(split.encoded)
    assert batch.shape == ids.shape == (2, 13)
    assert (batch[0, 10:] == IGNORE).all() and (mask[0, 10:] == 0).all()  # padding row 0
    torch.manual_seed(0)
    logits = torch.randn(2, 13, len(labels))
    base = head.loss(logits, batch)

    ignored = batch == IGNORE
    continuation = torch.zeros_like(ignored)
    continuation[0, [6, 7]] = True  # ##rse ##rk
    continuation[1, [4, 8, 9, 11]] = True  # ##aw ##tsu ##ki ##moto
    assert ignored[continuation].all()
    noisy = logits.clone()
    noisy[ignored] = torch.randn(int(ignored.sum()), len(labels)) * 100
    assert torch.equal(head.loss(noisy, batch), base)
    only_continuation = logits.clone()
    only_continuation[continuation] += 50.0
    assert torch.equal(head.loss(only_continuation, batch), base)

    first_piece = logits.clone()
    first_piece[0, 5] += torch.tensor([0.0, 0.0, 0.0, -20.0, 0.0])  # "be": gold B-TITLE
    assert head.loss(first_piece, batch) > base + 1.0


def test_truncated_entity_is_dropped_not_an_error(tmp_path: Path, tiny_bert: Path) -> None:
    short = SharedEncoder.load(tiny_bert, max_length=6)
    [enc] = short.tokenize([BERSERK])  # [CLS] is vol 12 of [SEP]: berserk is cut off
    assert word_tags(enc, [{"start": 13, "end": 20, "label": "TITLE"}]) == ["O"] * 4
