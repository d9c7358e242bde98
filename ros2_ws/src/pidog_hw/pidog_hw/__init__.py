"""pidog_hw"""
