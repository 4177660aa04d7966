"""Recipes: a declarative, validated, all-or-nothing patch — a list of verb steps run on one in-memory model.

    steps:
      - promote-input: {node: Resize, attr: scales}
      - cleanup: {}
    verify: true

A step is one verb with its options under the library's keyword names (the CLI's kebab-case accepted too);
``variables`` give defaults for ``${name}`` references, which ``--set name=value`` overrides. The whole recipe is
checked against the verb declarations before any model is touched. The same from Python::

    recipe = graphsurgeon.Recipe().step("promote-input", node="Resize", attr="scales").step("cleanup")
    graphsurgeon.apply(recipe, "srcnn.onnx").save("srcnn_dynamic.onnx")
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphsurgeon.core.batch_check import compare_edit
from graphsurgeon.core.editor import Source
from graphsurgeon.core.numeric import ATOL, RTOL, RUNS, CompareReport, Runnable, compare_models, random_feeds
from graphsurgeon.core.stats import model_stats
from graphsurgeon.core.verb import Option, OptionError, Verb
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.model import Model, load
from graphsurgeon.recipe.schema import WHOLE_VARIABLE, recipe_schema, schema_problems
from graphsurgeon.verbs import registry

TOP_LEVEL_KEYS = ("steps", "description", "variables", "verify", "$schema")
STEP_KEYS = ("verify", "description")  # beside the one verb key of a step
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RecipeError(GraphSurgeonError):
    """A recipe that cannot run as written (found before any model is touched)."""


class StepError(GraphSurgeonError):
    """A step failed on a model (nothing is written then)."""

    def __init__(self, message: str, step: int, report: CompareReport | None = None):
        super().__init__(message)
        self.step = step
        self.report = report  # the comparison, when a verify failed


@dataclass
class Step:
    """One verb and its options (library keyword names, or the CLI's kebab-case spelling)."""

    verb: str
    options: dict[str, Any] = field(default_factory=dict)
    verify: bool = False  # compare the model before and after this step in onnxruntime
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.verb: dict(self.options)}
        if self.verify:
            out["verify"] = True
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class Recipe:
    """A list of steps, plus a description, variable defaults and whether to verify the whole result."""

    steps: list[Step] = field(default_factory=list)
    description: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    verify: bool = False
    source: str = "recipe"  # the file name, for messages
    raw: Any = field(default=None, repr=False, compare=False)  # the parsed file, checked against the JSON Schema

    # -- building ----------------------------------------------------------------------------------------
    def step(self, verb: str, /, *, verify: bool = False, description: str = "", **options: Any) -> Recipe:
        """Append a step (``recipe.step("promote-input", node="Resize", attr="scales")``); returns the recipe."""
        self.steps.append(Step(verb.replace("_", "-"), options, verify, description))
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read a recipe file (YAML, or JSON)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise RecipeError(f"cannot read the recipe {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise RecipeError(f"cannot read the recipe {path}: it is not UTF-8 text") from None
        return cls.parse(text, source=path.name)

    @classmethod
    def parse(cls, text: str, *, source: str = "recipe") -> Recipe:
        """A recipe from YAML or JSON text (JSON is YAML; plain JSON parsing is used when PyYAML is missing)."""
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML is a dependency
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise RecipeError(f"{source}: not valid JSON (line {e.lineno}: {e.msg})") from None
        else:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                raise RecipeError(f"{source}: not valid YAML{where}: {problem}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "recipe") -> Recipe:
        """A recipe from its parsed form; the file's structure is checked here, the verbs by :meth:`validate`."""
        if not isinstance(data, Mapping):
            raise RecipeError(f"{source}: a recipe is a mapping with a 'steps' list, not {_kind(data)}")
        unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
        if unknown:
            raise RecipeError(
                f"{source}: unknown key {unknown[0]!r}{_did_you_mean(str(unknown[0]), TOP_LEVEL_KEYS)}; "
                f"a recipe has: {', '.join(TOP_LEVEL_KEYS[:4])}"
            )
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            found = "an empty list" if isinstance(steps, list) else _kind(steps)
            raise RecipeError(f"{source}: 'steps' must be a list of at least one step, not {found}")
        variables = data.get("variables") or {}
        if not isinstance(variables, Mapping) or not all(isinstance(k, str) for k in variables):
            raise RecipeError(f"{source}: 'variables' must map names to default values, not {_kind(variables)}")
        for key in ("verify",):
            if not isinstance(data.get(key, False), bool):
                raise RecipeError(f"{source}: '{key}' must be true or false, not {data[key]!r}")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise RecipeError(f"{source}: 'description' must be text, not {_kind(description)}")
        parsed = [_parse_step(item, number, source) for number, item in enumerate(steps, 1)]
        return cls(parsed, description, dict(variables), bool(data.get("verify", False)), source, data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        if self.variables:
            out["variables"] = dict(self.variables)
        out["steps"] = [s.to_dict() for s in self.steps]
        if self.verify:
            out["verify"] = True
        return out

    # -- checking ----------------------------------------------------------------------------------------
    def resolve(self, values: Mapping[str, Any] | None = None) -> Recipe:
        """A copy with every ``${name}`` replaced (`values` override the recipe's defaults) and every step
        checked against the verb declarations: option names normalized, types coerced. Raises RecipeError."""
        values = dict(values or {})
        undeclared = [k for k in values if k not in self.variables]
        if undeclared:
            declared = ", ".join(self.variables) or "none"
            raise RecipeError(
                f"{self.source}: there is no variable {undeclared[0]!r} to set; the recipe's variables: {declared}"
            )
        variables = {**self.variables, **values}
        verbs = registry()
        steps = []
        for number, step in enumerate(self.steps, 1):
            verb = _writing_verb(verbs, step.verb, f"{self.source}: step {number}")
            where = f"{self.source}: step {number} ({verb.name})"
            options = _option_names(verb, step.options, where)
            for name, value in options.items():
                options[name] = _substitute(value, verb.option(name), variables, f"{where}: option '{name}'")
            try:
                normalized = verb.normalize(options)
                _check_hook(verb, normalized)
            except OptionError as e:
                raise RecipeError(f"{where}: {_recipe_words(str(e), verb.name)}") from None
            given = {k: v for k, v in normalized.items() if k in options}
            steps.append(Step(verb.name, given, step.verify, step.description))
        problems = schema_problems(self.raw) if self.raw is not None else []
        if problems:  # the clear checks above passed; the schema is the last word
            raise RecipeError(f"{self.source}: {problems[0]}")
        return Recipe(steps, self.description, variables, self.verify, self.source)

    def validate(self, values: Mapping[str, Any] | None = None) -> None:
        """Raise RecipeError naming the step, the option and what is valid, if the recipe cannot run."""
        self.resolve(values)

    def plan(self) -> list[str]:
        """One line per step: what will run, with which options."""
        lines = [f"{self.source}: {self.description}" if self.description else f"{self.source}:"]
        for number, step in enumerate(self.steps, 1):
            options = ", ".join(f"{k}={v!r}" for k, v in step.options.items())
            check = " (then verify)" if step.verify else ""
            lines.append(f"  {number}. {step.verb}{f' {options}' if options else ''}{check}")
        if self.verify:
            lines.append("  then verify the result against the original in onnxruntime")
        return lines

    # -- running -----------------------------------------------------------------------------------------
    def run(
        self,
        model: Model,
        *,
        verify: bool | None = None,
        runs: int = RUNS,
        rtol: float = RTOL,
        atol: float = ATOL,
        feeds: Mapping[str, Any] | None = None,
    ) -> RecipeRun:
        """Run the (resolved) steps in order on `model`, in memory. A failing step raises StepError naming it;
        a failed per-step verify too. The whole-result check (`verify`, default the recipe's) is reported."""
        resolved = self.resolve()
        result = RecipeRun(model, model_stats(model.proto))
        check = verify if verify is not None else resolved.verify
        original = None
        if check:  # the file it was loaded from, or a snapshot of the graph (weights stay on disk either way)
            unedited = model.path is not None and not len(model.changes)
            source = model.path if unedited and model.path is not None else model.proto.SerializeToString()
            original = Runnable(source, model.external_data_dir, "the original")
        with model.running("apply"):
            names = ", ".join(s.verb for s in resolved.steps)
            model.changes.record("applied", "recipe", self.source, f"{len(resolved.steps)} step(s): {names}")
        for number, step in enumerate(resolved.steps, 1):
            where = f"step {number} ({step.verb})"
            before = None
            if step.verify:
                before = Runnable(model.proto.SerializeToString(), model.external_data_dir, f"the model before {where}")
            mark, started = len(model.changes), time.perf_counter()
            try:
                model.run_verb(step.verb, **step.options)
            except GraphSurgeonError as e:
                raise StepError(f"{where}: {recipe_spelling(str(e))}", number) from e
            report = None
            if before is not None:
                report = _compare(before, model, runs, rtol, atol, feeds, "the result of " + where)
                if not report.ok:
                    raise StepError(f"{where}: verify failed: {_verdict(report)}", number, report)
            result.steps.append(
                StepResult(number, step.verb, len(model.changes) - mark, time.perf_counter() - started, report)
            )
        if original is not None:
            result.verify = _compare(original, model, runs, rtol, atol, feeds, "the result")
        result.after = model_stats(model.proto)
        return result


@dataclass
class StepResult:
    number: int
    verb: str
    changes: int
    seconds: float
    verify: CompareReport | None = None

    def to_dict(self) -> dict[str, Any]:
        report = self.verify.to_dict() if self.verify is not None else None
        return {"step": self.number, "verb": self.verb, "changes": self.changes, "seconds": round(self.seconds, 4)} | {
            "verify": report
        }


@dataclass
class RecipeRun:
    """What a recipe did to one model: per step, and the whole-result verify (None if not asked)."""

    model: Model
    before: Any
    after: Any = None
    steps: list[StepResult] = field(default_factory=list)
    verify: CompareReport | None = None

    @property
    def ok(self) -> bool:
        return self.verify is None or self.verify.ok


def apply(
    recipe: Recipe | str | os.PathLike[str] | Mapping[str, Any],
    model: Model | Source,
    *,
    variables: Mapping[str, Any] | None = None,
    verify: bool | None = None,
) -> Model:
    """Run a recipe (a :class:`Recipe`, a recipe file, or its parsed dict) on a model, in memory; returns it.

    The recipe is checked completely before the model is touched. A failing step raises StepError (the model
    object is then as that step left it; nothing is written). `verify` (default: the recipe's) compares the
    result with the original in onnxruntime and raises StepError if they differ.
    """
    if isinstance(recipe, Mapping):
        recipe = Recipe.from_dict(recipe)
    elif not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe)
    resolved = recipe.resolve(variables)
    target = model if isinstance(model, Model) else load(model)
    run = resolved.run(target, verify=verify)
    if run.verify is not None and not run.verify.ok:
        raise StepError(f"verify failed: {_verdict(run.verify)}", len(resolved.steps), run.verify)
    return target


# -- helpers ---------------------------------------------------------------------------------------------
def _parse_step(item: Any, number: int, source: str) -> Step:
    where = f"{source}: step {number}"
    if isinstance(item, str):  # "- cleanup" without options
        return Step(item)
    if not isinstance(item, Mapping):
        raise RecipeError(f"{where}: a step is a mapping {{verb: {{options}}}}, not {_kind(item)}")
    verb_keys = [k for k in item if k not in STEP_KEYS]
    if len(verb_keys) != 1:
        found = ", ".join(map(str, verb_keys)) or "none"
        raise RecipeError(f"{where}: a step names exactly one verb (found: {found}); split it into several steps")
    name = str(verb_keys[0])
    options = item[name]
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise RecipeError(f"{where} ({name}): the options must be a mapping of name: value, not {_kind(options)}")
    check = item.get("verify", False)
    if not isinstance(check, bool):
        raise RecipeError(f"{where} ({name}): 'verify' must be true or false, not {check!r}")
    description = item.get("description") or ""
    return Step(name, {str(k): v for k, v in options.items()}, check, str(description))


def _writing_verb(verbs: Mapping[str, Verb], name: str, where: str) -> Verb:
    writing = [v.name for v in verbs.values() if v.writes]
    spelled = name.replace("_", "-")
    verb = verbs.get(spelled)
    if verb is None:
        raise RecipeError(f"{where}: unknown verb {name!r}{_did_you_mean(name, writing)}; valid: {', '.join(writing)}")
    if not verb.writes:
        raise RecipeError(
            f"{where}: {verb.name} is a report verb and changes nothing; a recipe's steps are verbs that rewrite "
            f"the model: {', '.join(writing)}"
        )
    return verb


def _option_names(verb: Verb, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = [o.name for o in verb.options]
    options: dict[str, Any] = {}
    for key, value in given.items():
        name = key.replace("-", "_")
        if name not in known:
            valid = ", ".join(known) or "none"
            raise RecipeError(f"{where}: no option {key!r}{_did_you_mean(name, known)}; {verb.name}'s options: {valid}")
        if name in options:
            first = next(k for k in given if k.replace("-", "_") == name)
            raise RecipeError(f"{where}: option {name!r} is given twice (as {first!r} and {key!r})")
        options[name] = value
    return options


def _substitute(value: Any, option: Option, variables: Mapping[str, Any], where: str) -> Any:
    """Replace ``${name}`` references; a value that is one whole reference takes the variable's type."""
    if isinstance(value, list):
        return [_substitute(v, option, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, option, variables, where) for k, v in value.items()}
    if not isinstance(value, str) or "$" not in value:
        return value

    def lookup(name: str) -> Any:
        if name not in variables:
            declared = ", ".join(variables) or "none"
            raise RecipeError(f"{where}: variable {name!r} is not declared under 'variables' (declared: {declared})")
        if variables[name] is None:
            raise RecipeError(f"{where}: variable {name!r} has no default and was not given a value")
        return variables[name]

    whole = WHOLE_VARIABLE.match(value)
    if whole:
        found = lookup(whole.group(1))
        if isinstance(found, str) and (option.kind == "flag" or option.scalar_type in (int, float)):
            return _typed(found)
        if option.kind == "flag" or option.scalar_type is not str or not isinstance(found, int | float):
            return found
        return str(found)
    return _VARIABLE.sub(lambda m: str(lookup(m.group(1))), value)


def _typed(text: str) -> Any:
    """A --set value as YAML reads a scalar: 3 -> int, 2.5 -> float, true -> bool, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _check_hook(verb: Verb, values: dict[str, Any]) -> None:
    """A verb module may define ``check_options(**values)``: checks that need no model (a pattern's syntax)."""
    module = importlib.import_module(verb.run.__module__)
    hook = getattr(module, "check_options", None)
    if hook is not None:
        hook(**values)


def _recipe_words(message: str, verb: str) -> str:
    return recipe_spelling(message.replace("True or False", "true or false").removeprefix(f"{verb} "))


def recipe_spelling(message: str) -> str:
    """Library messages name options as `name` or `name=True`; in a recipe they are keys ('name', 'all: true')."""
    message = " ".join(message.split())
    return re.sub(r"`(\w+)(=True)?`", lambda m: f"'{m.group(1)}'" + (": true" if m.group(2) else ""), message)


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean"}.get(type(value), type(value).__name__)


def _compare(
    before: Runnable,
    model: Model,
    runs: int,
    rtol: float,
    atol: float,
    feeds: Mapping[str, Any] | None,
    label: str,
) -> CompareReport:
    """Before vs now; an input an earlier step added is fed its original value on both sides. A step that freed
    the batch (make-dynamic, set-shape) is checked per batch slice, like the verbs' own `verify`."""
    after = Runnable(model.proto.SerializeToString(), model.external_data_dir, label)
    edit = model.shape_edit
    if edit is not None and edit.batch is not None:
        return compare_edit(
            before, after, edit, feeds=feeds, runs=runs, rtol=rtol, atol=atol,
            result_defaults=model.interface_defaults, renamed=model.interface_renames,
        )  # fmt: skip
    inputs = {vi.name: vi for vi in before.graph().graph.input}
    given = {name: read() for name, read in model.interface_defaults.items() if name in inputs} | dict(feeds or {})
    pinned = [  # inputs a step fixed to a static shape (set-shape): both sides run at that shape
        vi.name
        for vi in model.proto.graph.input
        if vi.name in inputs and vi.name not in given and _static(vi) and not _static(inputs[vi.name])
    ]
    if pinned:
        made = random_feeds(model.proto, given=given)
        given |= {name: made[name] for name in pinned}
    return compare_models(
        before, after, feeds=given or None, runs=runs, rtol=rtol, atol=atol, result_defaults=model.interface_defaults
    )


def _static(info: Any) -> bool:
    tensor = info.type.tensor_type
    return tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim)


def _verdict(report: CompareReport) -> str:
    if report.error is not None:
        return f"could not compare: {report.error}"
    return "; ".join(str(o) for o in report.outputs if not o.ok) or report.status


__all__ = ["Recipe", "RecipeError", "RecipeRun", "Step", "StepError", "StepResult", "apply", "recipe_schema"]
