module cassava.local/uploadpace

go 1.22
