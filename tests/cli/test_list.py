"""`mtlx list`: installed components by kind and catalogued plugins that are not installed."""

from __future__ import annotations


def test_list_shows_components_with_owner_and_missing_catalogue_entries(cli, catalogue):
    catalogue("fancy", datasets=["fancy-data"])
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "toy-weighted" in result.output and "<local> (mtlx_testing.plugin)" in result.output
    assert "mtlx-fancy (datasets: fancy-data)" in result.output
    assert "pip install mtlx-fancy" in result.output


def test_list_filters_by_kind_and_pattern(cli):
    result = cli("list", "strategies", "toy-*")
    assert result.exit_code == 0
    assert "toy-weighted" in result.output
    assert "datasets" not in result.output


def test_unknown_kind_is_a_usage_error(cli):
    result = cli("list", "strategy")
    assert result.exit_code == 2 and "Invalid value" in result.output


def _documented_plugin():
    import types
    from typing import ClassVar

    import attrs

    import mtlx

    @attrs.frozen(kw_only=True)
    class BaseOptions:
        """Options several components share.

        Attributes:
            tags: free-form labels
        """

        tags: tuple[str, ...] = ()

    class Documented(mtlx.LossWeighting):
        """A weighting whose options are documented in its Config's docstring and its base's."""

        @attrs.frozen(kw_only=True)
        class Config(BaseOptions):
            """Options.

            Attributes:
                scale: multiplies every loss; the doc
                    continues on an indented line.
                low, high: the clamp of the weights.
                norm: how the weights are ``normalised``

            Raises:
                ValueError: not an option (the next section).
            """

            scale: float = 1.0
            low: float = 0.0
            high: float = 9.0
            norm: str = attrs.field(default="sum", validator=attrs.validators.in_(("sum", "max")))

        presets: ClassVar = {"paper": {"strategy.scale": 2.0}}

        def combine(self, losses, step):
            return losses.sum(), losses

    def mtlx_register(registry):
        registry.strategies.register("documented", Documented)

    return types.SimpleNamespace(mtlx_register=mtlx.hookimpl(mtlx_register))


def test_details_show_each_option_with_type_default_choices_and_doc(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one table row per option

    result = cli("list", "--details", "documented", toy=False, plugins={"documented-plugin": _documented_plugin()})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "strategy documented <local> (documented-plugin)" in text
    assert "A weighting whose options are documented in its Config's docstring and its base's." in text
    for needle in ("tags │ tuple[str, ...] │ () │ free-form labels",
                   "scale │ float │ 1.0 │ multiplies every loss; the doc continues on an indented line.",
                   "low │ float │ 0.0 │ the clamp of the weights.", "high │ float │ 9.0 │ the clamp of the weights.",
                   "norm │ sum | max │ 'sum' │ how the weights are normalised",
                   "--preset paper: -o strategy.scale=2.0"):
        assert needle in text, needle
    assert "not an option" not in text


def test_every_option_of_every_installed_component_is_documented():
    """What ``mtlx list --details`` shows for each option: its entry in the ``Attributes:`` of the Config (or a base)."""
    import mtlx
    from mtlx.option_docs import describe_options

    pm = mtlx.PluginManager(modules=["mtlx_testing.plugin"])
    undocumented = [
        f"{registry.kind} {entry.name}: {option.name}"
        for registry in pm.registries.kinds.values()
        for entry in registry.entries()
        for option in describe_options(entry.obj.Config)
        if not option.doc
    ]
    assert undocumented == []


def test_details_of_a_dataset_show_its_recommended_settings_and_presets(cli):
    result = cli("list", "datasets", "--details", "toy")
    assert result.exit_code == 0, result.output
    assert "dataset toy" in result.output and "num_tasks" in result.output
    assert "recommended (applied unless set): -o arch.name=toy" in result.output
    assert "--preset fast: -o train.epochs=1" in result.output
    assert "architecture toy" not in result.output  # restricted to the kind asked for


def test_details_of_an_unknown_name_suggest_the_close_one(cli):
    result = cli("list", "--details", "toy-weightd")
    assert result.exit_code != 0
    assert "no component 'toy-weightd'; did you mean 'toy-weighted'?" in result.output


def test_summaries_and_names_are_printed_verbatim_not_as_rich_markup(cli, monkeypatch):
    import types

    import attrs

    import mtlx

    class Bracketed(mtlx.LossWeighting):
        """Weights [tasks] by [bold]importance[/bold] (see [1])."""

        @attrs.frozen
        class Config:
            pass

        def combine(self, losses, step):
            return losses.sum(), losses

    plugin = types.SimpleNamespace(mtlx_register=mtlx.hookimpl(lambda registry: registry.strategies.register(
        "bracketed", Bracketed)))
    monkeypatch.setenv("COLUMNS", "200")
    result = cli("list", "strategies", "bracketed", toy=False, plugins={"bracket-plugin": plugin})
    assert result.exit_code == 0, result.output
    assert "Weights [tasks] by [bold]importance[/bold] (see [1])." in " ".join(result.output.split())


def test_an_undocumented_option_is_marked_in_the_details(cli, monkeypatch):
    import types

    import attrs

    import mtlx

    class Bare(mtlx.LossWeighting):
        """Has an option nobody documented."""

        @attrs.frozen
        class Config:
            scale: float = 1.0

        def combine(self, losses, step):
            return losses.sum(), losses

    monkeypatch.setenv("COLUMNS", "200")
    plugin = types.SimpleNamespace(mtlx_register=mtlx.hookimpl(lambda registry: registry.strategies.register(
        "bare", Bare)))
    result = cli("list", "--details", "bare", toy=False, plugins={"bare-plugin": plugin})
    assert result.exit_code == 0, result.output
    assert "scale │ float │ 1.0 │ (undocumented)" in " ".join(result.output.split())
