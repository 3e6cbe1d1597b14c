module cassava.local/multipartlimit

go 1.22
