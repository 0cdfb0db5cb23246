"""Message catalogues stay in step with the code (issue 13: real message catalogues).

* every string marked for translation is in ``app/translations/messages.pot`` and nothing else is
  (re-extracted here with the very command of the README);
* the English catalogue translates every msgid, keeps its placeholders, and its ``.mo`` is the compiled
  ``.po``; the zh_CN (source) catalogue has every msgid too;
* Chinese text in templates and in ``flash()``/form definitions of app/ goes through ``_()``.

Updating after a change of wording: see README-i18n-snippet.md (extract, update, translate, compile).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "app" / "translations"
POT = TRANSLATIONS / "messages.pot"
LOCALES = ("en", "zh_CN")
# The extraction command (README "Translations"), without its output file.
EXTRACT = ["extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location", "--sort-output"]
CJK = re.compile(r"[\u3400-\u9fff]")
PERCENT = re.compile(r"%\((\w+)\)[sd]")
BRACES = re.compile(r"\{(\w*)(?:[:!][^{}]*)?\}")
# Text that stays as it is in every language: the switch names Chinese in Chinese; example CSV data.
TEMPLATE_ALLOWED = {"中文", "2027-01-01,holiday,元旦", "2027-02-20,workday,春节"}


def read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def ids(catalog: Catalog) -> set[str]:
    return {str(message.id) for message in catalog if message.id}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    with contextlib.chdir(ROOT), contextlib.redirect_stderr(io.StringIO()):
        CommandLineInterface().run(["pybabel", "-q", *EXTRACT, "-o", str(out), "."])
    return read(out)


def test_template_is_in_step_with_the_code(extracted: Catalog) -> None:
    committed, fresh = ids(read(POT)), ids(extracted)
    missing, stale = sorted(fresh - committed), sorted(committed - fresh)
    assert not missing and not stale, (
        f"messages.pot is out of date: {len(missing)} new msgids (e.g. {missing[:5]}), "
        f"{len(stale)} gone (e.g. {stale[:5]}); re-run the extract/update commands (README-i18n-snippet.md)"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_has_every_msgid(locale: str) -> None:
    catalogue, template = ids(read(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po")), ids(read(POT))
    assert catalogue == template, (sorted(template - catalogue)[:10], sorted(catalogue - template)[:10])


def test_english_translates_everything_and_keeps_placeholders() -> None:
    untranslated, fuzzy, broken = [], [], []
    for message in read(TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"):
        if not message.id:
            continue
        msgid, msgstr = str(message.id), str(message.string or "")
        if not msgstr.strip():
            untranslated.append(msgid)
        elif message.fuzzy:
            fuzzy.append(msgid)
        elif CJK.search(msgstr):
            untranslated.append(msgid)
        if sorted(PERCENT.findall(msgid)) != sorted(PERCENT.findall(msgstr)) or sorted(
            BRACES.findall(msgid)
        ) != sorted(BRACES.findall(msgstr)):
            broken.append((msgid, msgstr))
        if msgid.count("%%") != msgstr.count("%%"):
            broken.append((msgid, msgstr))
    assert not untranslated, f"{len(untranslated)} msgids without English: {untranslated[:10]}"
    assert not fuzzy, f"fuzzy English entries: {fuzzy[:10]}"
    assert not broken, f"placeholders differ: {broken[:5]}"


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalogue_is_the_po(locale: str) -> None:
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    compiled = io.BytesIO()
    write_mo(compiled, read(folder / "messages.po"))
    assert (folder / "messages.mo").read_bytes() == compiled.getvalue(), (
        f"{locale}/LC_MESSAGES/messages.mo is stale: run pybabel compile -d app/translations"
    )


# --- Chinese text that would not be translated ------------------------------------------------------------


def untranslated_template_text(source: str) -> list[str]:
    """Chinese text of a template outside ``{{ _('…') }}``, ``{% trans %}`` and comments."""
    text = re.sub(r"\{#.*?#\}", "", source, flags=re.S)
    text = re.sub(r"\{%-?\s*trans\b.*?endtrans\s*-?%\}", "", text, flags=re.S)
    found = []
    for expression in re.findall(r"\{\{.*?\}\}|\{%.*?%\}", text, flags=re.S):
        # string literals inside expressions that are not an argument of _()
        bare = re.sub(r"_\(\s*'(?:[^'\\]|\\.)*'|_\(\s*\"(?:[^\"\\]|\\.)*\"", "", expression)
        if expression.startswith("{{"):
            found += [s for s in re.findall(r"'([^']*)'|\"([^\"]*)\"", bare) for s in s if CJK.search(s)]
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "\n", text, flags=re.S)
    text = re.sub(r"<[^>]*?>", lambda m: "\n" + " ".join(re.findall(r'="([^"]*)"', m.group(0))) + "\n", text)
    found += [line.strip() for line in text.splitlines() if CJK.search(line)]
    return [f for f in found if f not in TEMPLATE_ALLOWED]


def test_untranslated_template_text_is_found() -> None:
    assert untranslated_template_text("<p>{{ _('好') }} 坏</p>") == ["坏"]
    assert untranslated_template_text('<a title="标题">{# 注释 #}</a>') == ["标题"]
    assert untranslated_template_text("{{ x or '无' }}{{ _('有') if y }}") == ["无"]
    assert untranslated_template_text("{% trans %}好{% endtrans %}") == []


def test_templates_have_no_untranslated_chinese() -> None:
    problems = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "app" / "templates").rglob("*.html"))
        if (found := untranslated_template_text(path.read_text(encoding="utf-8")))
    }
    assert not problems, f"wrap these in {{{{ _('…') }}}}: {problems}"


MARKERS = {"_", "_l", "N_", "gettext", "lazy_gettext", "ngettext"}
MESSAGE_CALLS = {"flash", "ValidationError", "StopValidation"}


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _chinese_literals(node: ast.AST) -> list[ast.AST]:
    """Chinese string constants and f-strings under ``node`` that are not inside a marker call."""
    if isinstance(node, ast.Call) and _name(node.func) in MARKERS:
        return []
    if isinstance(node, ast.JoinedStr):
        return [node] if any(CJK.search(ast.unparse(v)) for v in node.values) else []
    if isinstance(node, ast.Constant):
        return [node] if isinstance(node.value, str) and CJK.search(node.value) else []
    return [found for child in ast.iter_child_nodes(node) for found in _chinese_literals(child)]


def untranslated_python_text(source: str) -> list[tuple[int, str]]:
    """Chinese literals passed to flash()/ValidationError, or in a form class's field definitions."""
    tree = ast.parse(source)
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in MESSAGE_CALLS:
            found += [lit for arg in node.args for lit in _chinese_literals(arg)]
        if isinstance(node, ast.ClassDef) and any(_name(base).endswith("Form") for base in node.bases):
            found += [
                lit for stmt in node.body if isinstance(stmt, ast.Assign) for lit in _chinese_literals(stmt)
            ]
    return [(getattr(n, "lineno", 0), ast.unparse(n)[:60]) for n in found]


def test_untranslated_python_text_is_found() -> None:
    source = (
        "class F(FlaskForm):\n    a = StringField('名称', validators=[DataRequired(_l('请填写'))])\n"
        "def v():\n    flash(f'已保存{x}')\n    flash(_('好'))\n    raise ValidationError('坏')\n"
    )
    assert [line for line, _text in untranslated_python_text(source)] == [2, 4, 6]


def test_app_messages_go_through_gettext() -> None:
    problems = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "app").rglob("*.py"))
        if (found := untranslated_python_text(path.read_text(encoding="utf-8")))
    }
    assert not problems, f"wrap these in _() (views) or _l() (form classes): {problems}"
