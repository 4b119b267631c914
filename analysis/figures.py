"""Figure 4 and Figure S32 of the seed, drawn from a campaign's results in the database or in an archive.

One panel per model. Each panel shows the orbitals near the gap at their energies, three times side by side:
coloured by the contribution of each element (Cs, Pb, the halides, S), coloured by the contribution of each
domain (perovskite, chalcohalide, interface layer), and as their IPR on a log axis with the IPR threshold. The
IPR-filtered band edges are drawn across the panel and the gap between them is written on it; localised states
(IPR at or above the threshold) are marked, interface states (localised, at least half on the interface layer)
with a star. Every figure is written as PNG and SVG, with a CSV of exactly the orbitals plotted and the uuids of
the nodes they come from.

* Figure 4: the Pb4S3Br2 half-sphere, the CsPbBr3 cube and the CsPbBr3/Pb4S3Br2 heterostructure;
* Figure S32: the CsPbCl3/Pb4S3Br2 and CsPbI3/Pb4S3Br2 heterostructures.

Models that are missing (not computed, failed, unfinished) get a panel that says so by name.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiida_nanohetero.analysis import queries

__all__ = (
    'DEFAULT_WINDOW_EV',
    'FIGURES',
    'FigureData',
    'FigureSpec',
    'Panel',
    'WrittenFigure',
    'figure_data',
    'plot_figure',
    'save_figure',
    'write_campaign_figures',
    'write_figures',
)

#: Orbitals up to this far below the valence-band edge and above the conduction-band edge are drawn (eV).
DEFAULT_WINDOW_EV = 1.5

#: Colours of the elements and domains (colour-blind safe where it matters: the domains).
ELEMENT_COLOURS = {
    'Cs': '#7b4fa0',
    'Pb': '#4d4d4d',
    'Cl': '#2ca25f',
    'Br': '#b2182b',
    'I': '#2166ac',
    'S': '#e6ab02',
}
DOMAIN_COLOURS = {'perovskite': '#0072b2', 'chalcohalide': '#e69f00', 'interface': '#009e73'}
OTHER_COLOUR = '#bbbbbb'
LOCALISED_COLOUR = '#d7191c'
DELOCALISED_COLOUR = '#555555'
EDGE_COLOUR = '#111111'
GAP_SHADE = '#fff3b0'
WINDOW_HATCH = '#c8c8c8'

_SUBSCRIPT = str.maketrans('0123456789', '₀₁₂₃₄₅₆₇₈₉')


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A figure of the seed: its file stem, its title and the models of its panels (campaign keys)."""

    name: str
    title: str
    keys: tuple[str, ...]
    caption: str


FIGURES = {
    'figure4': FigureSpec(
        'figure4',
        'Figure 4',
        ('half_sphere', 'cube_Br', 'heterostructure_Br'),
        'Pb4S3Br2 half-sphere, CsPbBr3 cube and CsPbBr3/Pb4S3Br2 heterostructure',
    ),
    'figureS32': FigureSpec(
        'figureS32',
        'Figure S32',
        ('heterostructure_Cl', 'heterostructure_I'),
        'CsPbCl3/Pb4S3Br2 and CsPbI3/Pb4S3Br2 heterostructures',
    ),
}


def _chem(formula: str) -> str:
    return formula.translate(_SUBSCRIPT)


def ordered_formula(formula: str | None) -> str:
    """A formula with its elements in the order Cs, Pb, halides, S (``Br6Cs4Pb`` -> ``Cs4PbBr6``)."""
    import re

    if not formula:
        return ''
    counts = re.findall(r'([A-Z][a-z]?)(\d*)', formula)
    order = {element: i for i, element in enumerate(queries.ELEMENT_ORDER)}
    counts.sort(key=lambda item: order.get(item[0], len(order)))
    return ''.join(f'{element}{count}' for element, count in counts)


def panel_title(key: str) -> str:
    """The model a campaign key stands for, in words: ``cube_Br`` -> ``CsPbBr₃ cube``."""
    if key == 'half_sphere':
        return f'{_chem("Pb4S3Br2")} half-sphere'
    kind, _, halide = key.partition('_')
    perovskite = _chem(f'CsPb{halide}3')
    if kind == 'cube':
        return f'{perovskite} cube'
    if kind == 'heterostructure':
        return f'{perovskite}/{_chem("Pb4S3Br2")} heterostructure'
    return key


@dataclasses.dataclass
class Panel:
    """One model's panel: its results (``model``, a row of :func:`~.queries.models`), the orbitals drawn, or why
    it is missing."""

    letter: str
    key: str
    title: str
    model: dict | None
    orbitals: pd.DataFrame
    missing: str | None = None
    #: Energies (eV) of the lowest and highest orbital CP2K printed for this model (its MO window).
    window_ev: tuple[float, float] | None = None


@dataclasses.dataclass
class FigureData:
    """Everything one figure draws; ``table()`` is the CSV of exactly the data plotted."""

    spec: FigureSpec
    campaign_uuid: str
    protocol: str | None
    panels: list[Panel]
    ylim: tuple[float, float] | None
    footer: str

    @property
    def missing(self) -> dict[str, str]:
        return {panel.key: panel.missing for panel in self.panels if panel.missing}

    def table(self) -> pd.DataFrame:
        """The plotted orbitals of every panel, with the panel's band edges, gap and threshold on each row."""
        frames = []
        for panel in self.panels:
            if panel.missing:
                continue
            frame = panel.orbitals.copy()
            model = panel.model
            frame.insert(0, 'figure', self.spec.title)
            frame.insert(1, 'panel', panel.letter)
            frame['model_homo_ev'] = model['homo_ev']
            frame['model_lumo_ev'] = model['lumo_ev']
            frame['model_gap_ev'] = model['gap_ev']
            frame['model_vb_edge_ev'] = model['vb_edge_ev']
            frame['model_cb_edge_ev'] = model['cb_edge_ev']
            frame['model_gap_filtered_ev'] = model['gap_filtered_ev']
            frame['model_alignment'] = model['alignment']
            frame['model_formula'] = model['formula']
            frame['summary_uuid'] = model['summary_uuid']
            frame['workchain_uuid'] = model['workchain_uuid']
            frames.append(frame)
        if not frames:
            columns = ['figure', 'panel', *queries.ORBITAL_COLUMNS]
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)


@dataclasses.dataclass
class WrittenFigure:
    """Where a figure was written, its panels and the models it lacks (key -> reason)."""

    name: str
    title: str
    png: Path
    svg: Path
    csv: Path
    panels: list[str]
    missing: dict[str, str]

    def __str__(self) -> str:
        return '\n    '.join(self.describe())

    def describe(self) -> list[str]:
        """Lines saying what was written and what is missing, for the command line."""
        lines = [
            f'{self.title}: {self.png}, {self.svg.name}, {self.csv.name} (panels: {", ".join(self.panels) or "none"})'
        ]
        lines += [f'  missing {key}: {reason}' for key, reason in self.missing.items()]
        return lines


def _entry(model: dict, name: str):
    """The model's entry, or None where it is missing (None, NaN or NA in a DataFrame row)."""
    value = model.get(name)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return value


def _value(model: dict, name: str) -> float | None:
    value = _entry(model, name)
    return None if value is None else float(value)


def _edges(model: dict) -> tuple[float, float]:
    """The energies bounding the gap: the IPR-filtered edges, or HOMO and LUMO where those are undefined."""
    low = _value(model, 'vb_edge_ev')
    high = _value(model, 'cb_edge_ev')
    if low is None or high is None:
        low, high = _value(model, 'homo_ev'), _value(model, 'lumo_ev')
    return low, high


def figure_data(
    campaign: Any = None,
    figure: str = 'figure4',
    *,
    window_ev: float = DEFAULT_WINDOW_EV,
    backend=None,
    table: pd.DataFrame | None = None,
    orbital_table: pd.DataFrame | None = None,
) -> FigureData:
    """Collect what ``figure`` (``figure4`` or ``figureS32``) draws for a campaign (the latest if ``None``).

    All panels share one energy axis: from ``window_ev`` below the lowest valence-band edge to ``window_ev``
    above the highest conduction-band edge of the panels (HOMO/LUMO where the IPR-filtered edges are undefined).
    """
    if figure not in FIGURES:
        raise queries.ResultsError(f'unknown figure "{figure}": choose one of {", ".join(FIGURES)}')
    spec = FIGURES[figure]
    campaign = queries.get_campaign(campaign, backend)
    table = queries.models(campaign) if table is None else table
    missing = queries.missing_models(campaign, spec.keys, table)
    present = [key for key in spec.keys if key not in missing]
    if orbital_table is None:
        orbital_table = queries.orbitals(campaign, present, table=table)
    limits = []
    models = {}
    for key in present:
        model = table[table['key'] == key].iloc[0].to_dict()
        models[key] = model
        low, high = _edges(model)
        energies = orbital_table.loc[orbital_table['key'] == key, 'energy_ev']
        limits.append((max(low - window_ev, energies.min()), min(high + window_ev, energies.max())))
    ylim = (min(lo for lo, _ in limits), max(hi for _, hi in limits)) if limits else None
    panels = []
    for letter, key in zip('abcdefgh', spec.keys, strict=False):
        if key in missing:
            empty = pd.DataFrame(columns=list(queries.ORBITAL_COLUMNS))
            panels.append(Panel(letter, key, panel_title(key), None, empty, missing[key]))
            continue
        rows = orbital_table[orbital_table['key'] == key]
        window = (float(rows['energy_ev'].min()), float(rows['energy_ev'].max()))
        rows = rows[(rows['energy_ev'] >= ylim[0]) & (rows['energy_ev'] <= ylim[1])].reset_index(drop=True)
        panels.append(Panel(letter, key, panel_title(key), models[key], rows, window_ev=window))
    present_rows = table[table['key'].isin(present)]
    versions = sorted({str(v) for v in present_rows['cp2k_version'] if v is not None and v == v})
    methods = sorted({str(v) for v in present_rows['ipr_method'] if v is not None and v == v})
    protocol = campaign.base.extras.get('nanohetero_protocol', None)
    footer = f'campaign {campaign.uuid[:8]} · protocol {protocol or "?"}'
    if methods:
        footer += f' · IPR method {", ".join(methods)}'
    if versions:
        footer += f' · CP2K {", ".join(versions)}'
    return FigureData(spec, campaign.uuid, protocol, panels, ylim, footer)


# ---------------------------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------------------------

_RC = {
    'font.size': 7,
    'axes.titlesize': 7.5,
    'axes.labelsize': 7,
    'xtick.labelsize': 6,
    'ytick.labelsize': 6.5,
    'legend.fontsize': 6.5,
    'axes.linewidth': 0.6,
    'xtick.major.width': 0.5,
    'ytick.major.width': 0.5,
    'xtick.major.size': 2.5,
    'ytick.major.size': 2.5,
    'svg.fonttype': 'none',
    'font.family': 'DejaVu Sans',
}


def _stacked(ax, energies: np.ndarray, fractions: np.ndarray, colours: list[str], linewidth: float) -> None:
    """Each orbital as a horizontal bar at its energy, split into segments as long as each contribution."""
    if energies.size == 0:
        return
    fractions = np.clip(np.nan_to_num(np.asarray(fractions, dtype=float)), 0.0, None)
    totals = fractions.sum(axis=1, keepdims=True)
    fractions = np.divide(fractions, totals, out=np.zeros_like(fractions), where=totals > 0)
    start = np.zeros(energies.size)
    for j, colour in enumerate(colours):
        stop = start + fractions[:, j]
        keep = stop - start > 1e-4
        if keep.any():
            ax.hlines(energies[keep], start[keep], stop[keep], colors=colour, linewidth=linewidth, capstyle='butt')
        start = stop


def _columns(frame: pd.DataFrame, prefix: str, names: list[str]) -> np.ndarray:
    return np.column_stack([frame[f'{prefix}{name}'].to_numpy(dtype=float) for name in names]) if names else None


def _present(frames: list[pd.DataFrame], prefix: str, order: tuple[str, ...]) -> list[str]:
    names = []
    for frame in frames:
        for column in frame.columns:
            if column.startswith(prefix) and frame[column].to_numpy(dtype=float).max(initial=0) > 1e-6:
                names.append(column[len(prefix) :])
    ordered = [n for n in order if n in names]
    return ordered + sorted(set(names) - set(ordered))


def _mark_states(ax, frame: pd.DataFrame, x: float, size: float) -> None:
    """Markers just right of a composition axis: triangles for localised states, stars for interface states."""
    from matplotlib.transforms import blended_transform_factory

    transform = blended_transform_factory(ax.transAxes, ax.transData)
    localised = frame[frame['localised'] & ~frame['interface_state']]
    interface = frame[frame['interface_state']]
    common = {'transform': transform, 'clip_on': False, 'linestyle': 'none', 'zorder': 4}
    ax.plot(
        [x] * len(localised),
        localised['energy_ev'],
        marker='<',
        ms=size,
        color=LOCALISED_COLOUR,
        markeredgewidth=0,
        **common,
    )
    ax.plot(
        [x] * len(interface),
        interface['energy_ev'],
        marker='*',
        ms=size * 1.5,
        color=DOMAIN_COLOURS['interface'],
        markeredgecolor='k',
        markeredgewidth=0.3,
        **common,
    )


def _edge_lines(axes, model: dict) -> None:
    vb, cb = _value(model, 'vb_edge_ev'), _value(model, 'cb_edge_ev')
    homo, lumo = _value(model, 'homo_ev'), _value(model, 'lumo_ev')
    for ax in axes:
        if vb is not None and cb is not None:
            ax.axhspan(vb, cb, color=GAP_SHADE, zorder=0, linewidth=0)
            for energy in (vb, cb):
                ax.axhline(energy, color=EDGE_COLOUR, linewidth=0.7, zorder=3)
        elif homo is not None and lumo is not None:
            ax.axhspan(homo, lumo, color='#eeeeee', zorder=0, linewidth=0)
            for energy in (homo, lumo):
                ax.axhline(energy, color=EDGE_COLOUR, linewidth=0.6, linestyle=(0, (1.5, 1.5)), zorder=3)


def _gap_text(model: dict, short: bool = False) -> str:
    threshold = _value(model, 'ipr_threshold')
    gap_filtered = _value(model, 'gap_filtered_ev')
    gap = _value(model, 'gap_ev')
    if gap_filtered is not None:
        text = f'$E_g$ = {gap_filtered:.2f} eV'
        if short:
            return f'{text} (IPR < {threshold:g} edges)'
        if gap is not None and abs(gap - gap_filtered) > 0.005:
            text += f'\nHOMO–LUMO {gap:.2f} eV'
        return text
    if short:
        return f'HOMO–LUMO {gap:.2f} eV; no edge with IPR < {threshold:g}'
    return f'HOMO–LUMO {gap:.2f} eV\nno edge with IPR < {threshold:g}'


def _draw_panel(
    subfig, panel: Panel, data: FigureData, elements: list[str], domains: list[str], first: bool, bottom: float
):
    from matplotlib.ticker import NullFormatter

    frame = panel.orbitals.sort_values('energy_ev')
    model = panel.model
    grid = subfig.add_gridspec(
        1,
        3,
        width_ratios=[1.0, 1.0, 1.05],
        wspace=0.22,
        left=0.2 if first else 0.1,
        right=0.97,
        top=0.83,
        bottom=bottom,
    )
    ax_el = subfig.add_subplot(grid[0])
    ax_dom = subfig.add_subplot(grid[1], sharey=ax_el)
    ax_ipr = subfig.add_subplot(grid[2], sharey=ax_el)
    ax_el.set_label(f'{panel.key}:elements')
    ax_dom.set_label(f'{panel.key}:domains')
    ax_ipr.set_label(f'{panel.key}:ipr')
    axes = (ax_el, ax_dom, ax_ipr)
    energies = frame['energy_ev'].to_numpy(dtype=float)
    height_in = subfig.get_figure(root=True).get_figheight() * 0.76
    span = data.ylim[1] - data.ylim[0]
    # a bar about as thick as the spacing of the orbitals allows, between 0.6 and 1.8 pt
    linewidth = float(np.clip(72 * height_in / max(span, 1e-6) * 0.035, 0.6, 1.8))
    _edge_lines(axes, model)
    _stacked(
        ax_el,
        energies,
        _columns(frame, 'element_', elements),
        [ELEMENT_COLOURS.get(e, OTHER_COLOUR) for e in elements],
        linewidth,
    )
    _stacked(
        ax_dom,
        energies,
        _columns(frame, 'domain_', domains),
        [DOMAIN_COLOURS.get(d, OTHER_COLOUR) for d in domains],
        linewidth,
    )
    for ax in (ax_el, ax_dom):
        _mark_states(ax, frame, 1.07, 2.6)
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ['', '', ''])
        for side in ('top', 'right'):
            ax.spines[side].set_visible(False)
    ax_el.set_xlabel('element\nfraction', linespacing=0.95)
    ax_dom.set_xlabel('domain\nfraction', linespacing=0.95)
    # IPR on its own (log) axis, with the threshold
    threshold = _value(model, 'ipr_threshold') or queries_threshold_default()
    ipr = frame['ipr'].to_numpy(dtype=float)
    low = min(1e-3, 0.5 * float(ipr.min())) if ipr.size else 1e-3
    localised = frame['localised'].to_numpy(dtype=bool)
    colours = np.where(localised, LOCALISED_COLOUR, DELOCALISED_COLOUR)
    ax_ipr.hlines(energies, low, ipr, colors=colours, linewidth=0.5, alpha=0.8)
    ax_ipr.scatter(ipr, energies, s=5, c=colours, linewidths=0, zorder=4)
    interface = frame['interface_state'].to_numpy(dtype=bool)
    if interface.any():
        ax_ipr.scatter(
            ipr[interface],
            energies[interface],
            s=22,
            marker='*',
            c=DOMAIN_COLOURS['interface'],
            edgecolors='k',
            linewidths=0.3,
            zorder=5,
        )
    ax_ipr.set_xscale('log')
    ax_ipr.set_xlim(low, 1.0)
    ax_ipr.set_xticks([1e-2, 1.0], ['10⁻²', '1'])
    ax_ipr.xaxis.set_minor_formatter(NullFormatter())
    ax_ipr.axvline(threshold, color=LOCALISED_COLOUR, linestyle=(0, (3, 2)), linewidth=0.7, zorder=2)
    ax_ipr.text(
        threshold,
        1.005,
        f'{threshold:g}',
        transform=ax_ipr.get_xaxis_transform(),
        ha='center',
        va='bottom',
        fontsize=5.5,
        color=LOCALISED_COLOUR,
    )
    ax_ipr.set_xlabel('IPR\n(log)', linespacing=0.95)
    ax_ipr.spines['top'].set_visible(False)
    ax_ipr.spines['right'].set_visible(False)
    ax_el.set_ylim(*data.ylim)
    if first:
        ax_el.set_ylabel('Energy (eV)')
    for ax in (ax_dom, ax_ipr) if first else axes:
        ax.tick_params(labelleft=False)
    _window_limits(axes, panel, data.ylim)
    # the gap: on the panel's subtitle, and written in the gap itself where it fits
    gap_low, gap_high = _edges(model)
    box_height_ev = 22 / 72 / (ax_el.get_position().height * subfig.get_figure(root=True).get_figheight()) * span
    if gap_high - gap_low > box_height_ev:
        ax_dom.text(
            -0.12 if first else -0.1,
            _label_height(model, energies),
            _gap_text(model),
            transform=_blend(ax_dom),
            ha='center',
            va='center',
            fontsize=6,
            zorder=6,
            bbox={
                'boxstyle': 'round,pad=0.25',
                'facecolor': 'white',
                'edgecolor': '#999999',
                'linewidth': 0.4,
                'alpha': 0.92,
            },
        )
    lines = [f'{_chem(ordered_formula(model["formula"]))}, {model["n_atoms"]} atoms', _gap_text(model, short=True)]
    alignment = _entry(model, 'alignment')
    if alignment is not None:
        basis = _entry(model, 'alignment_basis')
        lines.append(f'{alignment} (from HOMO/LUMO)' if basis == 'HOMO/LUMO' else str(alignment))
    subfig.suptitle(f'({panel.letter}) {panel.title}', fontsize=7.5, fontweight='bold', y=0.985)
    subfig.text(
        0.5 + (0.05 if first else 0.0),
        0.935,
        '\n'.join(lines),
        ha='center',
        va='top',
        fontsize=6.2,
        color='#333333',
        linespacing=1.25,
    )


def _window_spans(panel: Panel, ylim: tuple[float, float]) -> list[tuple[float, float]]:
    """The energy ranges of the plot outside the model's MO window (where CP2K printed no orbitals)."""
    if panel.window_ev is None or panel.missing:
        return []
    low, high = panel.window_ev
    margin = 0.02 * (ylim[1] - ylim[0])
    spans = []
    if high + margin < ylim[1]:
        spans.append((high + margin, ylim[1]))
    if low - margin > ylim[0]:
        spans.append((ylim[0], low - margin))
    return spans


def _window_limits(axes, panel: Panel, ylim: tuple[float, float]) -> None:
    """Hatch the energies beyond the model's MO window, so that no orbitals there is not read as no states."""
    for start, stop in _window_spans(panel, ylim):
        for ax in axes:
            ax.axhspan(start, stop, facecolor='none', edgecolor=WINDOW_HATCH, hatch='////', linewidth=0, zorder=0)


def _label_height(model: dict, energies: np.ndarray) -> float:
    """Where to write the gap: the middle of the widest stretch of the gap free of in-gap states."""
    low, high = _edges(model)
    inside = np.sort(energies[(energies > low) & (energies < high)])
    bounds = np.concatenate([[low], inside, [high]])
    widest = int(np.argmax(np.diff(bounds)))
    return 0.5 * (bounds[widest] + bounds[widest + 1])


def queries_threshold_default() -> float:
    from aiida_nanohetero.analysis.summary import DEFAULT_IPR_THRESHOLD

    return DEFAULT_IPR_THRESHOLD


def _blend(ax):
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(ax.transAxes, ax.transData)


def _draw_missing(subfig, panel: Panel) -> None:
    ax = subfig.add_subplot(1, 1, 1)
    ax.set_label(f'{panel.key}:missing')
    ax.set_axis_off()
    reason = '\n'.join(textwrap.wrap(panel.missing, 34))
    ax.text(
        0.5,
        0.55,
        f'missing: {panel.key}\n\n{reason}',
        ha='center',
        va='center',
        fontsize=6.5,
        color='#8b0000',
        transform=ax.transAxes,
        bbox={'boxstyle': 'round,pad=0.6', 'facecolor': '#fbeaea', 'edgecolor': '#8b0000', 'linewidth': 0.5},
    )
    subfig.suptitle(f'({panel.letter}) {panel.title}', fontsize=7.5, fontweight='bold', y=0.985)


def plot_figure(data: FigureData):
    """Draw a figure (a matplotlib ``Figure`` with one ``SubFigure`` per panel, labelled with the model's key)."""
    import matplotlib

    matplotlib.use('Agg', force=False)
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    frames = [panel.orbitals for panel in data.panels if not panel.missing]
    elements = _present(frames, 'element_', queries.ELEMENT_ORDER)
    domains = _present(frames, 'domain_', queries.DOMAIN_ORDER)
    n = len(data.panels)
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(0.45 + 2.25 * n, 4.1), dpi=300, layout=None)
        subfigs = figure.subfigures(1, n, wspace=0.0, width_ratios=[1.12] + [1.0] * (n - 1) if n > 1 else None)
        subfigs = np.atleast_1d(subfigs)
        for index, (subfig, panel) in enumerate(zip(subfigs, data.panels, strict=True)):
            subfig.set_label(panel.key)
            if panel.missing:
                _draw_missing(subfig, panel)
            else:
                _draw_panel(subfig, panel, data, elements, domains, first=index == 0, bottom=0.235 if n > 2 else 0.28)
        handles = [Patch(color=ELEMENT_COLOURS.get(e, OTHER_COLOUR), label=e) for e in elements]
        handles += [Patch(color=DOMAIN_COLOURS.get(d, OTHER_COLOUR), label=d) for d in domains]
        thresholds = sorted({_value(p.model, 'ipr_threshold') for p in data.panels if p.model} - {None})
        label_threshold = ', '.join(f'{t:g}' for t in thresholds) or 'threshold'
        drawn = [p for p in data.panels if p.model]
        handles.append(
            Line2D([], [], color=LOCALISED_COLOUR, marker='<', linestyle='none', ms=4,
                   label=f'localised (IPR ≥ {label_threshold})')
        )  # fmt: skip
        if any(p.orbitals['interface_state'].any() for p in drawn):
            handles.append(
                Line2D([], [], color=DOMAIN_COLOURS['interface'], marker='*', markeredgecolor='k',
                       markeredgewidth=0.3, linestyle='none', ms=6, label='interface state')
            )  # fmt: skip
        if any(_value(p.model, 'gap_filtered_ev') is not None for p in drawn):
            handles.append(Line2D([], [], color=EDGE_COLOUR, linewidth=0.8, label='band edge (IPR-filtered)'))
        if any(_value(p.model, 'gap_filtered_ev') is None for p in drawn):
            handles.append(
                Line2D([], [], color=EDGE_COLOUR, linewidth=0.8, linestyle=(0, (1.5, 1.5)), label='HOMO / LUMO')
            )
        handles.append(
            Line2D([], [], color=LOCALISED_COLOUR, linewidth=0.8, linestyle=(0, (3, 2)), label='IPR threshold')
        )
        if any(_window_spans(p, data.ylim) for p in drawn):
            handles.append(
                Patch(
                    facecolor='white', edgecolor=WINDOW_HATCH, hatch='////', linewidth=0, label='outside the MO window'
                )
            )
        if frames:
            figure.legend(
                handles=handles,
                loc='lower center',
                ncol=-(-len(handles) // (2 if n > 2 else 3)),
                bbox_to_anchor=(0.5, 0.02),
                frameon=False,
                handlelength=1.4,
                columnspacing=1.0,
                handletextpad=0.4,
            )
        figure.text(
            0.005,
            0.005,
            f'{data.spec.title} (reproduced) · {data.footer}',
            fontsize=5.2,
            color='#666666',
            ha='left',
            va='bottom',
        )
    return figure


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Save as PNG (300 dpi) or SVG (text kept as text, no date: the same data give the same file)."""
    import matplotlib

    path = Path(path)
    with matplotlib.rc_context({**_RC, 'svg.hashsalt': 'nanohetero'}):
        if path.suffix == '.svg':
            figure.savefig(path, metadata={'Date': None})
        else:
            figure.savefig(path, dpi=300)
    return path


def write_figures(
    campaign: Any = None,
    out_dir: str | os.PathLike = 'figures',
    *,
    figures: tuple[str, ...] = tuple(FIGURES),
    window_ev: float = DEFAULT_WINDOW_EV,
    backend=None,
) -> list[WrittenFigure]:
    """Write each figure of a campaign (the latest if ``None``) as ``<name>.png``, ``.svg`` and ``.csv`` into
    ``out_dir``; returns what was written and which models are missing."""
    campaign = queries.get_campaign(campaign, backend)
    table = queries.models(campaign)
    wanted = sorted(
        {key for name in figures for key in FIGURES[name].keys}
        - set(queries.missing_models(campaign, [k for name in figures for k in FIGURES[name].keys], table))
    )
    orbital_table = queries.orbitals(campaign, wanted, table=table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in figures:
        data = figure_data(campaign, name, window_ev=window_ev, table=table, orbital_table=orbital_table)
        figure = plot_figure(data)
        paths = {suffix: out / f'{name}.{suffix}' for suffix in ('png', 'svg', 'csv')}
        save_figure(figure, paths['png'])
        save_figure(figure, paths['svg'])
        data.table().to_csv(paths['csv'], index=False, float_format='%.10g')
        written.append(
            WrittenFigure(
                name,
                data.spec.title,
                paths['png'],
                paths['svg'],
                paths['csv'],
                [panel.key for panel in data.panels if not panel.missing],
                data.missing,
            )
        )
    return written


def write_campaign_figures(campaign_node, out_dir: str | os.PathLike) -> list[WrittenFigure]:
    """Figure 4 and Figure S32 of the campaign just run (``nanohetero demo`` calls this); see :func:`write_figures`."""
    return write_figures(campaign_node, out_dir)
