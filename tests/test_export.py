import numpy as np
import plotly.graph_objects as go

from ctxlens.figures.basic import hidden_norm_heatmap
from ctxlens.figures.export import figure_csv, figure_table


def test_heatmap_cells_with_token_labels():
    fig = go.Figure(go.Heatmap(z=[[1, 2, 3], [4, 5, 6]], x=[0, 1, 2], y=[0, 1], name="att"))
    fig.update_layout(xaxis=dict(tickvals=[0, 1, 2], ticktext=["[CLS]", "bank", "[SEP]"]))
    table = figure_table(fig)
    assert len(table) == 6
    row = table[(table.x == 1) & (table.y == 1)].iloc[0]
    assert row.value == 5 and row.x_label == "bank" and row.trace == "att"


def test_bars_and_points_keep_their_text():
    fig = go.Figure(go.Bar(x=["Paris", "London"], y=[0.7, 0.1], text=["70%", "10%"], name="top-k"))
    table = figure_table(fig)
    assert table[["x", "y", "text"]].values.tolist() == [["Paris", 0.7, "70%"], ["London", 0.1, "10%"]]


def test_a_real_figure_exports_every_value():
    from ctxlens.record import Activations, Analysis, Family, Word

    hidden = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    record = Analysis(
        model_key="toy", family=Family.MASKED_LM, text="a b", text_pair=None,
        tokens=("[CLS]", "a", "b"), token_ids=np.arange(3), offsets=np.array([[0, 0], [0, 1], [2, 3]]),
        word_ids=np.array([-1, 0, 1]), special_mask=np.array([True, False, False]),
        segment_ids=np.zeros(3, int), words=(Word("a", 0, 1), Word("b", 2, 3)),
        acts=Activations.from_arrays(hidden),
    )
    csv = figure_csv(hidden_norm_heatmap(record))
    lines = csv.strip().splitlines()
    assert len(lines) == 1 + 6 and "x_label" in lines[0]
    norms = np.linalg.norm(hidden, axis=-1)
    table = figure_table(hidden_norm_heatmap(record))
    np.testing.assert_allclose(table.value.to_numpy(), norms.ravel(), rtol=1e-6)
