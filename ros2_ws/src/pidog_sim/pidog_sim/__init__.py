"""pidog_sim"""
