def live_summary(store, cfg, cal, now):
    return {}
