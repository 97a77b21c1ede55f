-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER: the two databases of docker-compose.yml, owned by that role.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
