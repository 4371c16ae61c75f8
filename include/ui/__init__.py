"""The pages the Airflow plugin (plugins/ecom_ui.py) serves: pipeline health and quality."""
