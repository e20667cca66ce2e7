"""The compute section of a hardware profile: tensor peaks, measured GEMM efficiencies, the
kernel floor, the special-function rate, and the BLAS tile that tile and wave quantization
need (:func:`moebench.engine.terms.compute.quantization`)."""

from __future__ import annotations

from pydantic import Field

from moebench.inputs.schema import CountFigure, Figure, FractionFigure, Record


class GemmTile(Record):
    """How the vendor BLAS runs a large GEMM: output tiles of ``rows`` x ``cols``, one per SM
    (compute unit) at a time, ``sms`` at once (a wave). What tile and wave quantization need."""

    sms: CountFigure = Field(description="SMs (compute units) that each run one tile at a time")
    rows: CountFigure = Field(description="output rows per tile (the token dimension)")
    cols: CountFigure = Field(description="output columns per tile")


class ComputeSpec(Record):
    bf16_dense_tflops: Figure
    fp8_dense_tflops: Figure | None = Field(
        description="null when the chip has no FP8 tensor path"
    )
    bf16_gemm_efficiency: FractionFigure = Field(
        description="max-achievable matmul (best shape, vendor BLAS) over the BF16 peak: what the "
                    "silicon sustains under load (clocks, power)")
    fp8_gemm_efficiency: FractionFigure | None
    min_kernel_us: Figure = Field(
        description="device-side floor of one kernel (start, tail, gap to the next)")
    sfu_exp_tera_per_s: Figure | None = Field(
        default=None,
        description="exponentials per second the special-function units compute (softmax's "
                    "exp in attention); absent where no figure is known: no exp term")
    gemm_tile: GemmTile | None = Field(
        default=None,
        description="the BLAS's large-GEMM tile and the SMs it fills, for tile and wave "
                    "quantization; absent where the library picks tiles per shape or no figure "
                    "is known: no quantization term")
