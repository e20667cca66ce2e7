import pytest

from moebench.commands.shared.cost import convert, energy_mwh, ownership_per_chip_hour, young_daly


def test_young_daly_by_hand():
    # cluster MTBF 1e6 s / 1000 = 1000 s; delta 10 s -> tau = sqrt(2 * 10 * 1000) = 141.42 s
    g = young_daly(1000, 1e6, 10.0, 0.0)
    assert float(g.interval_s) == pytest.approx(141.421, rel=1e-4)
    assert float(g.goodput) == pytest.approx((1 - 70.7107 / 1000) / (1 + 10 / 141.421), rel=1e-4)


def test_goodput_falls_with_cluster_size_and_restart_time():
    small = float(young_daly(1024, 50_700 * 3600, 60.0, 1200.0).goodput)
    large = float(young_daly(16384, 50_700 * 3600, 60.0, 1200.0).goodput)
    slow_restart = float(young_daly(16384, 50_700 * 3600, 60.0, 3600.0).goodput)
    assert 1.0 > small > large > slow_restart > 0.0


def test_llama3_interruption_rate():
    # 16,384 H100 with the Llama 3 failure rate: a failure every 11,140 s (~3.1 hours);
    # 2-minute checkpoints, 20-minute restarts.
    m = 50_700 * 3600 / 16384
    tau = (2 * 120 * m) ** 0.5
    g = young_daly(16384, 50_700 * 3600, 120.0, 1200.0)
    assert float(g.goodput) == pytest.approx((1 - (tau / 2 + 1200) / m) / (1 + 120 / tau))
    assert float(g.goodput) == pytest.approx(0.7629, abs=1e-3)


def test_ownership_per_chip_hour_by_hand():
    price = ownership_per_chip_hour(30_000, 4, 1.0, 1000, 1.25, 0.1)
    assert price == pytest.approx(30_000 / (4 * 8766) + 1.0 * 1.25 * 0.1)


def test_energy_and_currency():
    assert energy_mwh(1000, 1000, 1.2, 3600) == pytest.approx(1.2)
    assert convert(2.0, "USD", "CNY", 7.2) == pytest.approx(14.4)
    assert convert(14.4, "CNY", "USD", 7.2) == pytest.approx(2.0)
    assert convert(5.0, "USD", "USD", 7.2) == 5.0
