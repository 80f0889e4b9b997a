"""The hyperparameter schema and its one validation (no database needed)."""

import json

import pytest
from django.core.exceptions import ValidationError

from training.architectures import ARCHITECTURES, TRAINING_SCHEMA, architectures_as_json, resolve_config
from training.hyperparameters import (
    Hyperparameter,
    ParamType,
    ResolvedConfig,
    Schema,
    parse_assignments,
    schema_as_json,
    validate,
)

MLP = ARCHITECTURES["mlp"].schema


def errors_of(schema, raw) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        validate(schema, raw)
    return caught.value.message_dict


def test_missing_keys_take_their_defaults():
    config = validate(MLP, {})

    assert config == MLP.defaults()
    assert list(config) == list(MLP.names)
    assert config["learning_rate"] == 1e-3
    assert config["hidden_sizes"] == (256, 64)
    assert config["batch_norm"] is False


def test_a_good_config_is_resolved_with_native_values():
    config = validate(MLP, {
        "learning_rate": 0.01, "epochs": 12, "batch_norm": True, "hidden_sizes": [128, 32],
        "optimizer": "sgd", "dropout": 0, "early_stopping_metric": "val_f1",
    })

    assert (config["learning_rate"], config["epochs"], config["batch_norm"]) == (0.01, 12, True)
    assert config["hidden_sizes"] == (128, 32)
    assert config["optimizer"] == "sgd"
    assert config["dropout"] == 0.0 and isinstance(config["dropout"], float)
    assert config["early_stopping_metric"] == "val_f1"


def test_strings_from_a_form_or_the_command_line_are_coerced():
    config = validate(MLP, {
        "lr": "1e-3", "epochs": " 30 ", "batch_size": "64", "batch_norm": "on", "hidden_sizes": "256, 128,",
        "scheduler": " cosine ", "weight_decay": "0", "seed": "7",
    })

    assert config["learning_rate"] == pytest.approx(1e-3)
    assert (config["epochs"], config["batch_size"], config["seed"]) == (30, 64, 7)
    assert config["batch_norm"] is True
    assert config["hidden_sizes"] == (256, 128)
    assert config["scheduler"] == "cosine"
    assert validate(MLP, {"batch_norm": "false"})["batch_norm"] is False


def test_json_numbers_with_an_integral_value_are_accepted_as_integers():
    config = validate(MLP, {"epochs": 30.0, "hidden_sizes": [64.0]})

    assert config["epochs"] == 30 and isinstance(config["epochs"], int)
    assert config["hidden_sizes"] == (64,)


def test_null_means_the_default():
    assert validate(MLP, {"dropout": None})["dropout"] == MLP["dropout"].default


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({"learning_rate": 2.0}, "learning_rate", "must be between 1e-06 and 1 (got 2)"),
    ({"learning_rate": "0"}, "learning_rate", "must be between 1e-06 and 1 (got 0)"),
    ({"epochs": 0}, "epochs", "must be between 1 and 1000 (got 0)"),
    ({"dropout": 0.95}, "dropout", "must be between 0 and 0.9 (got 0.95)"),
    ({"hidden_sizes": "256,0"}, "hidden_sizes", "each item must be between 1 and 8192 (got 0)"),
    ({"hidden_sizes": ""}, "hidden_sizes", "needs at least 1 item"),
    ({"hidden_sizes": "1,2,3,4,5,6,7,8,9"}, "hidden_sizes", "takes at most 8 items (got 9)"),
])
def test_out_of_range_values_are_refused_with_their_bounds(raw, field, message):
    errors = errors_of(MLP, raw)

    assert list(errors) == [field]
    assert message in errors[field][0]


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({"learning_rate": "fast"}, "learning_rate", "must be a number (got 'fast')"),
    ({"learning_rate": True}, "learning_rate", "must be a number (got True)"),
    ({"learning_rate": "nan"}, "learning_rate", "must be a finite number"),
    ({"learning_rate": float("inf")}, "learning_rate", "must be a finite number"),
    ({"epochs": "ten"}, "epochs", "must be an integer (got 'ten')"),
    ({"epochs": 2.5}, "epochs", "must be an integer (got 2.5)"),
    ({"epochs": True}, "epochs", "must be an integer (got True)"),
    ({"batch_norm": "maybe"}, "batch_norm", "must be true or false (got 'maybe')"),
    ({"batch_norm": 1}, "batch_norm", "must be true or false (got 1)"),
    ({"hidden_sizes": "256,big"}, "hidden_sizes", 'must be a list of integers such as "256,128"'),
    ({"hidden_sizes": 256}, "hidden_sizes", 'must be a list of integers such as "256,128"'),
    ({"optimizer": 3}, "optimizer", "must be one of: adam, adamw, sgd (got 3)"),
])
def test_wrong_types_are_refused(raw, field, message):
    errors = errors_of(MLP, raw)

    assert list(errors) == [field]
    assert message in errors[field][0]


def test_a_value_outside_the_choices_names_them():
    errors = errors_of(MLP, {"activation": "swish"})

    assert errors == {"activation": ["must be one of: relu, gelu, tanh (got 'swish')"]}


def test_an_unknown_key_is_refused_with_a_suggestion():
    errors = errors_of(MLP, {"learning_rat": 0.1})

    assert list(errors) == ["learning_rat"]
    assert errors["learning_rat"][0].startswith("unknown hyperparameter; did you mean 'learning_rate'? (known: ")


def test_an_architecture_parameter_is_unknown_to_the_baseline():
    errors = errors_of(ARCHITECTURES["logreg"].schema, {"hidden_sizes": "64"})

    assert list(errors) == ["hidden_sizes"]
    assert "unknown hyperparameter" in errors["hidden_sizes"][0]


def test_a_parameter_given_by_name_and_alias_is_refused():
    errors = errors_of(MLP, {"learning_rate": 0.1, "lr": 0.2})

    assert errors == {"learning_rate": ["given twice (as 'learning_rate' and 'lr')"]}


def test_every_bad_field_is_reported_in_one_error():
    errors = errors_of(MLP, {
        "learning_rate": 5, "epochs": "many", "nonsense": 1, "activation": "swish", "batch_norm": "perhaps",
        "dropout": 0.2,
    })

    assert set(errors) == {"learning_rate", "epochs", "nonsense", "activation", "batch_norm"}


def test_raw_must_be_a_mapping():
    with pytest.raises(ValidationError) as caught:
        validate(MLP, ["lr", 1])  # type: ignore[arg-type]

    assert caught.value.message_dict == {"hyperparameters": ["must be an object of name: value (got list)"]}


def test_resolved_config_is_immutable_and_json_ready():
    config = validate(MLP, {"hidden_sizes": "32,16"})

    with pytest.raises(TypeError):
        config["epochs"] = 3  # type: ignore[index]
    assert config.as_dict()["hidden_sizes"] == [32, 16]
    assert json.loads(json.dumps(config.as_dict())) == config.as_dict()
    assert isinstance(config, ResolvedConfig) and hash(config) == hash(validate(MLP, {"hidden_sizes": [32, 16]}))


def test_parse_assignments_reads_set_options():
    assert parse_assignments(["lr=1e-3", "epochs=30", "hidden_sizes=256,128"]) == {
        "lr": "1e-3", "epochs": "30", "hidden_sizes": "256,128",
    }
    with pytest.raises(ValidationError) as caught:
        parse_assignments(["lr", "epochs=3", "epochs=4"])
    assert caught.value.message_dict == {
        "set": ["expected name=value (got 'lr')"], "epochs": ["set twice ('3' and '4')"],
    }


def test_assignments_validate_through_the_schema():
    config = resolve_config("mlp", parse_assignments(["lr=1e-2", "epochs=3", "batch_norm=yes"]))

    assert (config["learning_rate"], config["epochs"], config["batch_norm"]) == (1e-2, 3, True)


def test_schema_as_json_describes_each_parameter():
    described = {entry["name"]: entry for entry in schema_as_json(MLP)}

    assert [entry["name"] for entry in schema_as_json(MLP)] == list(MLP.names)
    assert described["learning_rate"] == {
        "name": "learning_rate", "type": "float", "default": 1e-3, "help": "Optimiser step size.",
        "minimum": 1e-6, "maximum": 1.0, "log_scale": True, "choices": [], "min_items": None,
        "max_items": None, "aliases": ["lr"], "group": "training",
    }
    assert described["hidden_sizes"]["default"] == [256, 64]
    assert described["hidden_sizes"]["group"] == "architecture"
    assert described["optimizer"]["choices"] == ["adam", "adamw", "sgd"]
    assert described["batch_norm"]["type"] == "bool"
    json.dumps(architectures_as_json())


def test_architectures_as_json_lists_both_with_their_schemas():
    listed = {entry["key"]: entry for entry in architectures_as_json()}

    assert set(listed) == {"mlp", "logreg"}
    assert [entry["name"] for entry in listed["logreg"]["hyperparameters"]] == list(TRAINING_SCHEMA.names)
    assert {"hidden_sizes", "dropout", "activation", "batch_norm"} <= {
        entry["name"] for entry in listed["mlp"]["hyperparameters"]
    }


def test_as_text_writes_values_as_a_form_would():
    assert MLP["hidden_sizes"].as_text((256, 64)) == "256,64"
    assert MLP["batch_norm"].as_text(True) == "true"
    assert validate(MLP, {"hidden_sizes": MLP["hidden_sizes"].as_text((8, 4))})["hidden_sizes"] == (8, 4)


@pytest.mark.parametrize(("arguments", "message"), [
    (dict(name="x", type=ParamType.CHOICE, default="a", help=""), "a choice needs choices"),
    (dict(name="x", type=ParamType.FLOAT, default=0.1, help="", minimum=0.0, log_scale=True),
     "log scale needs a positive minimum"),
    (dict(name="x", type=ParamType.INT, default=0, help="", minimum=1, maximum=5), "invalid default"),
    (dict(name="x", type=ParamType.INT, default=1, help="", minimum=5, maximum=1), "minimum above maximum"),
])
def test_a_malformed_declaration_fails_at_import_time(arguments, message):
    with pytest.raises(ValueError, match=message):
        Hyperparameter(**arguments)


def test_a_schema_refuses_duplicate_names():
    parameter = Hyperparameter("x", ParamType.BOOL, False, "")
    with pytest.raises(ValueError, match="declared twice"):
        Schema((parameter, Hyperparameter("y", ParamType.BOOL, False, "", aliases=("x",))))


def test_an_architecture_can_change_a_shared_default_within_its_bounds():
    assert resolve_config("logreg")["learning_rate"] == 1e-2
    assert resolve_config("mlp")["learning_rate"] == 1e-3
    assert TRAINING_SCHEMA["lr"].default == 1e-3  # the shared schema is unchanged
    with pytest.raises(ValueError, match="not in the schema: hidden_sizes"):
        TRAINING_SCHEMA.with_defaults(hidden_sizes="8")
    with pytest.raises(ValueError):
        TRAINING_SCHEMA.with_defaults(learning_rate=5.0)  # above its maximum
