import gzip

from alignment_support import FIXTURES

from ctd.alignment import TokenizationBias
from ctd.alignment.bias_cli import main as bias_main
from ctd.alignment.cli import main as align_main


def _json(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_bytes(gzip.decompress((FIXTURES / name / "tokenizer.json.gz").read_bytes()))
    return str(path)


def test_align_cli_plain_output(tmp_path, capsys) -> None:
    teacher, student = _json(tmp_path, "gpt2"), _json(tmp_path, "mistral-v3-spm")
    code = align_main(["--teacher", teacher, "--student", student, "--text", " Hello 🤗!"])
    out = capsys.readouterr().out
    assert code == 0
    assert "\033[" not in out  # not a terminal: no colours
    assert "' Hello'" in out
    assert out.splitlines()[0].startswith("5 chunks")  # Hello, 3 emoji pieces, !


def test_tokenizer_bias_cli(tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the theory of these things\n\nthere and then\n\n" * 20)
    output = tmp_path / "bias.npz"
    teacher, student = _json(tmp_path, "gpt2"), _json(tmp_path, "phi3")
    args = ["--teacher", teacher, "--student", student, "--corpus", str(corpus)]
    assert bias_main([*args, "--output", str(output), "--threshold", "0.2"]) == 0
    bias = TokenizationBias.load(output)
    assert bias.threshold == 0.2
    assert len(bias.teacher_bias) == 50257
    assert len(bias.student_bias) == 32064
    assert "wrote" in capsys.readouterr().out
