"""pidog_learning"""
