"""A request for runs: one typed model with bounds, shared by the API, the CLI and the config file.

The API validates POST bodies with it, `benchd run` its options, the
config loader each `[workloads.NAME]` table, and the OpenAPI document's
RunRequest schema is generated from it, so the rules cannot drift apart.
Every number is bounded: nothing non-finite, negative or beyond what the
platform (timers, SQLite integers) can hold gets past it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchd.catalog import WORKLOADS, build_config, get_workload, resolve_presets, suites
from benchd.catalog.spec import MAX_EPOCHS, MIN_TIMEOUT_SECONDS, CatalogError, Precision, RunConfig, Timing

MAX_TIMEOUT_SECONDS = 30 * 24 * 3600.0  # a month: beyond it a timer is a mistake, and some platforms overflow
MAX_SEED = 2**63 - 1  # what SQLite's INTEGER holds
DEVICE_PATTERN = r"^(auto|cpu|mps|(cuda|xpu)(:\d{1,3})?)$"


class RunRequestFields(BaseModel):
    """Which workload and presets to run, and how: every field optional but the workload."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    workload: str = Field(max_length=32, json_schema_extra={"enum": list(WORKLOADS)})
    suite: str | None = Field(
        None,
        max_length=64,
        json_schema_extra={"enum": [*suites.suites(), None]},
        description="A suite (docs/cli.md) sets presets, fraction and epochs, the same on every machine that "
        "runs it; none of them may be given too.",
    )
    presets: str | list[str] = Field("all", description="A preset name, a list of them, or `all`.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto, cpu, cuda[:N], mps, xpu[:N].")
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Epochs per run.")
    fraction: float = Field(1.0, gt=0, le=1, description="Fraction of each epoch to run.")
    batch_size: int | None = Field(None, ge=1, le=1 << 20, description="Override the preset's batch size.")
    options: dict[str, int] | None = Field(
        None,
        max_length=32,
        description="The workload's own model options over its preset's (`GET /api/v1/workloads` lists each "
        "workload's, with bounds); the workload checks them.",
    )
    workers: int | None = Field(
        None, ge=0, le=256, description="DataLoader workers. Default: as the published run on the device."
    )
    seed: int = Field(1, ge=0, le=MAX_SEED, description="Seed for weights, shuffling and pair sampling.")
    timeout: float | None = Field(
        None,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="Seconds before a run is stopped as `timeout`.",
    )
    timing: Timing = Field(
        Timing.REFERENCE,
        strict=False,  # the value, as JSON and TOML give it
        description="reference: what the published comparison timed; device: the training steps alone.",
    )
    precision: Precision = Field(
        Precision.FP32,
        strict=False,
        description="fp32 (float32, as published); tf32 matmuls (Ampere and newer); autocast to fp16 (with "
        "a gradient scaler) or bf16.",
    )

    compile: bool = Field(
        False, description="torch.compile the model; compile time is reported apart from the epochs."
    )
    channels_last: bool = Field(False, description="DCGAN and Siamese: channels-last (NHWC) memory format.")
    deterministic: bool = Field(
        False,
        description="Every random stream seeded and deterministic kernels only; the run records a "
        "fingerprint of its losses and final weights (docs/workloads.md).",
    )

    @field_validator("presets")
    @classmethod
    def _some_presets(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= 64:
            raise ValueError("list between 1 and 64 preset names")
        return value

    def preset_names(self) -> list[str]:
        return [self.presets] if isinstance(self.presets, str) else list(self.presets)

    def configs(self) -> list[RunConfig]:
        """One run config per chosen preset; CatalogError names an unknown workload, preset or option."""
        workload = get_workload(self.workload)
        return [
            build_config(
                workload,
                preset,
                epochs=self.epochs,
                fraction=self.fraction,
                batch_size=self.batch_size,
                options=self.options,
                workers=self.workers,
                seed=self.seed,
                timing=self.timing.value,
                precision=self.precision.value,
                compile=self.compile,
                channels_last=self.channels_last,
                deterministic=self.deterministic,
            )
            for preset in resolve_presets(workload, self.preset_names())
        ]


def parse(values: dict[str, Any]) -> RunRequestFields:
    """Validate `values`, raising CatalogError for the first problem, with the field it concerns."""
    try:
        return RunRequestFields.model_validate(_with_suite(values))
    except ValidationError as exc:
        raise _first_problem(exc) from None


def _with_suite(values: dict[str, Any]) -> dict[str, Any]:
    """The one place a suite is expanded (the API, the CLI and the config file all parse here): its presets,
    fraction and epochs for the workload, none of which the request may set too."""
    suite, workload = values.get("suite"), values.get("workload")
    if not isinstance(suite, str) or not isinstance(workload, str):
        return values  # nothing to expand, or the model names what is wrong
    clash = [name for name in suites.SUITE_FIELDS if name in values]
    if clash:
        raise CatalogError(f"is set by suite {suite!r}; drop one of them", clash[0])
    get_workload(workload)
    chosen = suites.entry(suite, workload)
    return {**values, "presets": list(chosen.presets), "fraction": chosen.fraction, "epochs": chosen.epochs}


def _first_problem(exc: ValidationError) -> CatalogError:
    problem = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        known = ", ".join(sorted(RunRequestFields.model_fields))
        return CatalogError(f"unknown field {field!r}; fields: {known}")
    if problem["type"] == "missing":
        return CatalogError("is required", field)
    value = problem.get("input")
    if problem["type"] == "string_pattern_mismatch":
        return CatalogError(
            f"{value!r} is not one of {RunRequestFields.model_fields[field].description}", field
        )
    reason = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]
    shown = "" if isinstance(value, (dict, list)) else f", got {value!r}"
    return CatalogError(f"{reason[0].lower()}{reason[1:]}{shown}", field)


def openapi_schema() -> dict[str, Any]:
    """The model as a JSON Schema (OpenAPI 3.1 uses JSON Schema 2020-12): the API's RunRequest. The enums
    (timing, precision) are written in place: a component's own `$defs` would not resolve in the document."""
    schema = RunRequestFields.model_json_schema(mode="validation")
    definitions = schema.pop("$defs", {})
    schema["properties"] = {
        name: _inlined(field, definitions) for name, field in schema["properties"].items()
    }
    schema["title"] = "RunRequest"
    return schema


def _inlined(field: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    reference = field.get("$ref", "")
    if not reference.startswith("#/$defs/"):
        return field
    rest = {key: value for key, value in field.items() if key != "$ref"}
    return {**definitions[reference.removeprefix("#/$defs/")], **rest}
