"""Naming faces: a classifier fitted on a few photos per person that names a face or says
"unknown" (its calibration, its bundle on disk), and the enroll and predict commands."""
