"""Operations: metrics, logs, the GC guard and retention."""
